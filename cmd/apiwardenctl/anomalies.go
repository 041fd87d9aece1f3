package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
	"github.com/apiwarden/apiwarden/apimodel/behavior"
)

// anomalyRulePrefix: the behavioural model's rule ids are "abuse-<detector>".
const anomalyRulePrefix = "abuse-"

// anomaliesCommand lists the behavioural model's findings: the events of
// class abuse (ListEvents, the same RPC as `events`), filtered by service,
// detector and time, newest first.
func anomaliesCommand(ctx context.Context, g *globals, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("anomalies", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var service, detector, since, action string
	var limit uint
	var asJSON bool
	g.register(fs, "output format: table or json")
	fs.BoolVar(&asJSON, "json", false, "same as -o json")
	fs.StringVar(&service, "service", "", "only this service")
	fs.StringVar(&detector, "detector", "", "only this detector (enumeration, brute-force, credential-stuffing, client-rate, ...)")
	fs.StringVar(&since, "since", "", "only anomalies newer than a duration (1h) or an RFC 3339 time")
	fs.StringVar(&action, "action", "", "only this action (blocked, monitor, block-failed)")
	fs.UintVar(&limit, "limit", 0, "at most this many anomalies (0: the agent's default of 100)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return fmt.Errorf("%w: anomalies takes no arguments, got %d", errUsage, len(pos))
	}
	if asJSON {
		g.output = "json"
	}
	if g.output != "table" && g.output != "json" {
		return fmt.Errorf("%w: -o must be table or json", errUsage)
	}
	rule := ""
	if detector != "" {
		if rule = detectorRule(detector); rule == "" {
			return fmt.Errorf("%w: unknown detector %q (one of %s)", errUsage, detector, strings.Join(detectorNames(), ", "))
		}
	}
	req := &apiwardenv1.ListEventsRequest{Service: service, Class: behavior.Class, Action: action,
		Limit: uint32(min(limit, 1<<31))}
	if rule != "" {
		// The RPC has no rule filter: ask for as many as the agent gives
		// and keep the detector's here.
		req.Limit = 10000
	}
	if since != "" {
		t, err := parseSince(since, time.Now())
		if err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		req.Since = timestamppb.New(t)
	}

	conn, err := grpc.NewClient(g.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)))
	if err != nil {
		return fmt.Errorf("agent address %q: %w", g.addr, err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	resp, err := apiwardenv1.NewApiwardenClient(conn).ListEvents(ctx, req)
	if err != nil {
		return err
	}
	out := &apiwardenv1.ListEventsResponse{}
	for _, e := range resp.GetEvents() {
		if e.GetClass() != behavior.Class || rule != "" && e.GetRuleId() != rule {
			continue
		}
		if limit > 0 && uint(len(out.Events)) >= limit {
			break
		}
		out.Events = append(out.Events, e)
	}
	if g.output == "json" {
		// protojson varies its spacing between builds on purpose; scripts
		// and golden files want the same bytes: re-indent.
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(out)
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		buf.WriteByte('\n')
		_, err = stdout.Write(buf.Bytes())
		return err
	}
	return output(stdout, g.output, out, printAnomalies)
}

// detectorRule maps a detector as a user types it ("brute-force",
// "brute_force", "abuse-brute-force") to its rule id, "" if unknown.
func detectorRule(d string) string {
	d = strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(d, anomalyRulePrefix)), "_", "-")
	for _, r := range behavior.Rules() {
		if r == anomalyRulePrefix+d {
			return r
		}
	}
	return ""
}

func detectorNames() []string {
	var out []string
	for _, r := range behavior.Rules() {
		out = append(out, strings.TrimPrefix(r, anomalyRulePrefix))
	}
	return out
}

func printAnomalies(w *tabwriter.Writer, r *apiwardenv1.ListEventsResponse) {
	fmt.Fprintln(w, "TIME\tDETECTOR\tSEVERITY\tACTION\tSERVICE\tENDPOINT\tCLIENT\tEVIDENCE")
	for _, e := range r.GetEvents() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", timeString(e.GetTime()),
			strings.TrimPrefix(e.GetRuleId(), anomalyRulePrefix), e.GetSeverity(), e.GetAction(),
			dash(e.GetService()), dash(e.GetEndpoint()), dash(e.GetClient()), evidence(e.GetExcerpt()))
	}
}

// evidenceWidth bounds the evidence column (the model writes sentences,
// longer than attack excerpts).
const evidenceWidth = 90

// evidence prints the model's sentence as it is unless it holds
// characters a terminal would act on (field names come from requests):
// then it is quoted like an attack excerpt.
func evidence(s string) string {
	if r := []rune(s); len(r) > evidenceWidth {
		s = string(r[:evidenceWidth]) + "…"
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == '\t' {
			return fmt.Sprintf("%q", s)
		}
	}
	return dash(s)
}
