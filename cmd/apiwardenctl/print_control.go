package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

func printModes(w *tabwriter.Writer, r *apiwardenv1.ListModesResponse) {
	fmt.Fprintf(w, "default mode:\t%s\n\n", r.GetDefaultMode())
	fmt.Fprintln(w, "SERVICE\tMODE\tSOURCE\tCONFIGURED\tUPDATED\tNOTE")
	for _, m := range r.GetServices() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", m.GetService(), m.GetMode(), m.GetSource(),
			m.GetConfiguredMode(), timeString(m.GetUpdated()), dash(m.GetNote()))
	}
}

func printServiceMode(w *tabwriter.Writer, m *apiwardenv1.ServiceMode) {
	fmt.Fprintf(w, "%s: %s (%s", m.GetService(), m.GetMode(), m.GetSource())
	if m.GetSource() == "runtime" {
		fmt.Fprintf(w, "; configured: %s", m.GetConfiguredMode())
	}
	fmt.Fprintln(w, ")")
	if m.GetNote() != "" {
		fmt.Fprintf(w, "note: %s\n", m.GetNote())
	}
}

func printRules(w *tabwriter.Writer, r *apiwardenv1.ListRulesResponse) {
	fmt.Fprintf(w, "kernel rules:\t%d\n", r.GetKernelRules())
	if r.GetAutoBlockThreshold() > 0 {
		fmt.Fprintf(w, "auto-block:\t%d findings in %s block the source for %s\n", r.GetAutoBlockThreshold(),
			r.GetAutoBlockWindow().AsDuration(), r.GetAutoBlockTtl().AsDuration())
	} else {
		fmt.Fprintln(w, "auto-block:\toff")
	}
	fmt.Fprintf(w, "rule files:\t%s\n\n", dash(strings.Join(r.GetRuleFiles(), ", ")))
	fmt.Fprintln(w, "DENY METHOD\tPATH PREFIX\tPORT\tACTION\tIN KERNEL")
	if len(r.GetDenyRules()) == 0 {
		fmt.Fprintln(w, "-\t-\t-\t-\t-")
	}
	for _, d := range r.GetDenyRules() {
		port := "any"
		if d.GetPort() != 0 {
			port = fmt.Sprint(d.GetPort())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%t\n", dash(d.GetMethod()), d.GetPathPrefix(), port, d.GetAction(), d.GetInKernel())
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "CLASS\tRULES\tENABLED\tKERNEL LITERALS\tSEVERITIES")
	for _, f := range r.GetFamilies() {
		sev := make([]string, 0, len(f.GetSeverities()))
		for _, k := range slices.Sorted(maps.Keys(f.GetSeverities())) {
			sev = append(sev, fmt.Sprintf("%s:%d", k, f.GetSeverities()[k]))
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%d\t%s\n", f.GetClass(), f.GetRules(), f.GetEnabled(), f.GetKernelLiterals(), dash(strings.Join(sev, " ")))
	}
	if len(r.GetRules()) == 0 {
		return
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "RULE\tCLASS\tSEVERITY\tCONFIDENCE\tPL\tENABLED\tDESCRIPTION")
	for _, d := range r.GetRules() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%d\t%d\t%t\t%s\n", d.GetId(), d.GetClass(), d.GetSeverity(), d.GetConfidence(),
			d.GetParanoia(), d.GetEnabled(), dash(d.GetDescription()))
	}
}

func printXDS(w *tabwriter.Writer, x *apiwardenv1.XDSStatus) {
	if !x.GetEnabled() {
		fmt.Fprintln(w, "xds:\toff (start the agent with --xds-addr)")
		return
	}
	fmt.Fprintf(w, "addr:\t%s\n", x.GetAddr())
	fmt.Fprintf(w, "version:\t%d\n", x.GetVersion())
	fmt.Fprintf(w, "pushes:\t%d\n", x.GetPushes())
	fmt.Fprintf(w, "nacks:\t%d\n", x.GetNacks())
	fmt.Fprintf(w, "last update:\t%s\n", timeString(x.GetLastUpdate()))
	if x.GetLastError() != "" {
		fmt.Fprintf(w, "last error:\t%s (%s)\n", x.GetLastError(), timeString(x.GetLastErrorTime()))
	} else {
		fmt.Fprintln(w, "last error:\t-")
	}
	fmt.Fprintf(w, "nodes:\t%d\n\n", len(x.GetNodes()))
	fmt.Fprintln(w, "NODE\tGRPC LISTENERS\tACKED")
	for _, n := range x.GetNodes() {
		acked := make([]string, 0, len(n.GetAcked()))
		for _, k := range slices.Sorted(maps.Keys(n.GetAcked())) {
			acked = append(acked, shortType(k)+"="+n.GetAcked()[k])
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", n.GetId(), dash(strings.Join(n.GetGrpcListeners(), ",")), dash(strings.Join(acked, " ")))
	}
}

// shortType keeps the message name of a type URL
// ("type.googleapis.com/envoy.config.listener.v3.Listener" -> "Listener").
func shortType(url string) string {
	if i := strings.LastIndex(url, "."); i >= 0 {
		return url[i+1:]
	}
	return url
}
