package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

const (
	defaultAddr = "127.0.0.1:9464"
	addrEnv     = "APIWARDEN_ADDR"
	// maxRecvBytes lets a large inventory or OpenAPI document through; the
	// gRPC default of 4 MiB is too small for a busy node.
	maxRecvBytes = 256 << 20
	// excerptWidth bounds the excerpt column so one event stays one line.
	excerptWidth = 48
)

const usage = `usage: apiwardenctl [--addr HOST:PORT] [--token-file FILE] [--timeout D] COMMAND [flags]

commands:
  inventory [--service NAME] [-o table|json]   learned API endpoints
  openapi [-o FILE]                            OpenAPI 3 document of the inventory
  processes [-o table|json]                    serving processes and TLS visibility
  events [--since 1h|RFC3339] [--service S] [--class C] [--action A] [--limit N] [-o table|json]
  anomalies [--since 1h|RFC3339] [--service S] [--detector D] [--action A] [--limit N] [--json]
                                               behavioural findings (events of class abuse)
  blocklist [-o table|json]                    blocked source prefixes
  block PREFIX [--ttl 10m] [--reason TEXT]     block a source prefix (ttl 0: until unblocked)
  unblock PREFIX                               remove a prefix from the blocklist
  status [-o table|json]                       agent version, mode and counters
  modes [-o table|json]                        global mode and each service's mode (and its source)
  mode SERVICE monitor|protect|default         set a service's mode at run time (default: back to config)
  rules [--detail] [-o table|json]             deny rules and detection rule families (--detail: every rule)
  xds [-o table|json]                          xDS server: version, nodes, pushes, NACKs, last error
  policy export --format xds|istio|cilium [-o yaml|json] [--config FILE] [--namespace NS]
                                               policy for Envoy, Istio or Cilium (policy export -h)
  spec import SERVICE FILE [--data-dir DIR]    check an OpenAPI spec and install it for the agent
                                               (read at agent start; positive mode: behavior.positive)
  spec diff SERVICE FILE [-o table|json]       observed endpoints vs the spec: shadow, unobserved, zombie
  grpc list [--service PKG.SVC] [-o table|json] observed gRPC services and methods: calls, grpc-status, kinds

The agent address defaults to $APIWARDEN_ADDR, then 127.0.0.1:9464. An agent
whose API is exposed beyond loopback wants a bearer token: --token-file, then
$APIWARDEN_TOKEN_FILE, then $APIWARDEN_TOKEN (the token itself).
`

// globals are the flags every command accepts, before or after its name.
type globals struct {
	addr      string
	timeout   time.Duration
	output    string
	tokenFile string
	getenv    func(string) string
}

func (g *globals) register(fs *flag.FlagSet, outputHelp string) {
	fs.StringVar(&g.addr, "addr", g.addr, "agent API address (env "+addrEnv+")")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "timeout of the call")
	fs.StringVar(&g.tokenFile, "token-file", g.tokenFile, "file holding the agent's API bearer token (env "+tokenFileEnv+", or "+tokenEnv+")")
	fs.StringVar(&g.output, "o", g.output, outputHelp)
}

// errUsage reports a command line mistake; run prints usage for it.
var errUsage = errors.New("usage")

// run is main without the process: tests call it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	g := &globals{addr: defaultAddr, timeout: 10 * time.Second, output: "table", getenv: getenv}
	if a := getenv(addrEnv); a != "" {
		g.addr = a
	}
	top := flag.NewFlagSet("apiwardenctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	g.register(top, "output format: table or json")
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return 0
		}
		fmt.Fprintf(stderr, "apiwardenctl: %v\n%s", err, usage)
		return 2
	}
	if top.NArg() == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := top.Arg(0), top.Args()[1:]
	if cmd == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}

	err := dispatch(ctx, g, cmd, rest, stdout)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "apiwardenctl: %v\n%s", err, usage)
		return 2
	default:
		fmt.Fprintf(stderr, "apiwardenctl: %s\n", describe(cmd, g.addr, err))
		return 1
	}
}

// describe turns an RPC error into one line a user can act on.
func describe(cmd, addr string, err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return err.Error()
	}
	switch st.Code() {
	case codes.Unavailable:
		return fmt.Sprintf("agent not reachable at %s (is apiwarden running? set --addr or %s): %s",
			addr, addrEnv, lastCause(st.Message()))
	case codes.DeadlineExceeded:
		return fmt.Sprintf("%s: agent at %s did not answer in time", cmd, addr)
	case codes.Unimplemented:
		return fmt.Sprintf("%s: not supported by this agent", cmd)
	case codes.Unauthenticated:
		return fmt.Sprintf("%s: agent at %s refused the call: %s (set --token-file, %s or %s)",
			cmd, addr, st.Message(), tokenFileEnv, tokenEnv)
	default:
		return fmt.Sprintf("%s: %s", cmd, st.Message())
	}
}

// lastCause keeps the end of grpc's nested dial error ("connection error:
// desc = transport: Error while dialing: dial tcp ...: connect: connection
// refused"), which is the useful part.
func lastCause(msg string) string {
	msg = strings.TrimRight(msg, `"`)
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		if j := strings.LastIndex(msg[:i], ": "); j >= 0 {
			return msg[j+2:]
		}
	}
	return msg
}

// parseInterleaved parses flags that may come before or after positional
// arguments ("block 10.0.0.0/8 --ttl 10m"), which flag.Parse alone stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func dispatch(ctx context.Context, g *globals, cmd string, args []string, stdout io.Writer) error {
	if cmd == "policy" {
		return policyCmd(ctx, g, args, stdout)
	}
	if cmd == "spec" {
		return specCommand(ctx, g, args, stdout)
	}
	if cmd == "anomalies" {
		return anomaliesCommand(ctx, g, args, stdout)
	}
	if cmd == "grpc" {
		return grpcCommand(ctx, g, args, stdout)
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		service, class, action, since, reason string
		limit                                 uint
		ttl                                   time.Duration
		nargs                                 int
		detail                                bool
	)
	switch cmd {
	case "inventory":
		g.register(fs, "output format: table or json")
		fs.StringVar(&service, "service", "", "only this service name")
	case "openapi":
		g.output = ""
		g.register(fs, "write the document to this file instead of stdout")
	case "processes", "blocklist", "status", "modes", "xds":
		g.register(fs, "output format: table or json")
	case "mode":
		g.register(fs, "output format: table or json")
		nargs = 2
	case "rules":
		g.register(fs, "output format: table or json")
		fs.BoolVar(&detail, "detail", false, "list every detection rule, not only the families")
	case "events":
		g.register(fs, "output format: table or json")
		fs.StringVar(&since, "since", "", "only events newer than a duration (1h) or an RFC 3339 time")
		fs.StringVar(&service, "service", "", "only this service")
		fs.StringVar(&class, "class", "", "only this attack class")
		fs.StringVar(&action, "action", "", "only this action")
		fs.UintVar(&limit, "limit", 0, "at most this many events (0: agent default)")
	case "block":
		g.register(fs, "output format: table or json")
		fs.DurationVar(&ttl, "ttl", 0, "block lifetime (0: until unblocked)")
		fs.StringVar(&reason, "reason", "manual", "why, shown in the blocklist")
		nargs = 1
	case "unblock":
		g.register(fs, "unused")
		nargs = 1
	default:
		return fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != nargs {
		return fmt.Errorf("%w: %s takes %d argument(s), got %d", errUsage, cmd, nargs, len(pos))
	}
	if cmd != "openapi" && g.output != "table" && g.output != "json" {
		return fmt.Errorf("%w: -o must be table or json", errUsage)
	}

	conn, err := g.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	c := apiwardenv1.NewApiwardenClient(conn)
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()

	switch cmd {
	case "inventory":
		resp, err := c.ListInventory(ctx, &apiwardenv1.ListInventoryRequest{Service: service})
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printInventory)
	case "openapi":
		resp, err := c.GetOpenAPI(ctx, &apiwardenv1.GetOpenAPIRequest{})
		if err != nil {
			return err
		}
		doc := resp.GetData()
		if g.output != "" {
			if err := os.WriteFile(g.output, doc, 0o644); err != nil {
				return fmt.Errorf("write openapi: %w", err)
			}
			return nil
		}
		_, err = stdout.Write(doc)
		if err == nil && len(doc) > 0 && doc[len(doc)-1] != '\n' {
			_, err = io.WriteString(stdout, "\n")
		}
		return err
	case "processes":
		resp, err := c.ListProcesses(ctx, &apiwardenv1.ListProcessesRequest{})
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printProcesses)
	case "events":
		req := &apiwardenv1.ListEventsRequest{Service: service, Class: class, Action: action, Limit: uint32(min(limit, 1<<31))}
		if since != "" {
			t, err := parseSince(since, time.Now())
			if err != nil {
				return fmt.Errorf("%w: %v", errUsage, err)
			}
			req.Since = timestamppb.New(t)
		}
		resp, err := c.ListEvents(ctx, req)
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printEvents)
	case "blocklist":
		resp, err := c.ListBlocks(ctx, &apiwardenv1.ListBlocksRequest{})
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printBlocks)
	case "block":
		if ttl < 0 {
			return fmt.Errorf("%w: --ttl must not be negative", errUsage)
		}
		req := &apiwardenv1.AddBlockRequest{Prefix: pos[0], Reason: reason}
		if ttl > 0 {
			req.Ttl = durationpb.New(ttl)
		}
		b, err := c.AddBlock(ctx, req)
		if err != nil {
			return err
		}
		return output(stdout, g.output, &apiwardenv1.ListBlocksResponse{Blocks: []*apiwardenv1.Block{b}}, printBlocks)
	case "unblock":
		if _, err := c.DeleteBlock(ctx, &apiwardenv1.DeleteBlockRequest{Prefix: pos[0]}); err != nil {
			return err
		}
		_, err := fmt.Fprintf(stdout, "unblocked %s\n", pos[0])
		return err
	case "status":
		resp, err := c.GetStatus(ctx, &apiwardenv1.GetStatusRequest{})
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printStatus)
	case "modes":
		resp, err := c.ListModes(ctx, &apiwardenv1.ListModesRequest{})
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printModes)
	case "mode":
		m, err := c.SetMode(ctx, &apiwardenv1.SetModeRequest{Service: pos[0], Mode: pos[1]})
		if err != nil {
			return err
		}
		return output(stdout, g.output, m, printServiceMode)
	case "rules":
		resp, err := c.ListRules(ctx, &apiwardenv1.ListRulesRequest{Detail: detail})
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printRules)
	case "xds":
		resp, err := c.GetXDSStatus(ctx, &apiwardenv1.GetXDSStatusRequest{})
		if err != nil {
			return err
		}
		return output(stdout, g.output, resp, printXDS)
	}
	return nil
}

// parseSince accepts a duration back from now ("90m") or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d.Abs()), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration (1h) or an RFC 3339 time", s)
	}
	return t, nil
}

// output prints m as indented JSON (the REST shape) or through its table
// printer.
func output[M proto.Message](w io.Writer, format string, m M, table func(*tabwriter.Writer, M)) error {
	if format == "json" {
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		// protojson varies its whitespace on purpose from build to build;
		// encoding/json re-indents it the same way every time, so scripts
		// and golden files see one stable layout.
		var buf bytes.Buffer
		if err := json.Indent(&buf, b, "", "  "); err != nil {
			return fmt.Errorf("encode json: %w", err)
		}
		buf.WriteByte('\n')
		_, err = w.Write(buf.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	table(tw, m)
	return tw.Flush()
}

func printInventory(w *tabwriter.Writer, r *apiwardenv1.ListInventoryResponse) {
	fmt.Fprintln(w, "SERVICE\tMETHOD\tTEMPLATE\tCOUNT\tSTATUSES")
	for _, e := range r.GetEndpoints() {
		fmt.Fprintf(w, "%s:%d\t%s\t%s\t%d\t%s\n", e.GetService().GetName(), e.GetService().GetPort(),
			e.GetMethod(), e.GetPathTemplate(), e.GetRequestCount(), counts(e.GetStatusCodes()))
	}
}

func printProcesses(w *tabwriter.Writer, r *apiwardenv1.ListProcessesResponse) {
	fmt.Fprintln(w, "PID\tCOMM\tPORTS\tCONTAINER\tPROTOCOLS\tCALLS\tVISIBILITY\tREASON")
	for _, p := range r.GetProcesses() {
		ports := make([]string, 0, len(p.GetPorts()))
		for _, port := range p.GetPorts() {
			ports = append(ports, strconv.FormatUint(uint64(port), 10))
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", p.GetPid(), p.GetComm(), dash(strings.Join(ports, ",")),
			dash(shortID(p.GetContainerId())), dash(strings.Join(p.GetProtocols(), ",")), p.GetCalls(), p.GetVisibility(), p.GetReason())
	}
}

func printEvents(w *tabwriter.Writer, r *apiwardenv1.ListEventsResponse) {
	fmt.Fprintln(w, "TIME\tSEVERITY\tCLASS\tACTION\tSERVICE\tENDPOINT\tCLIENT\tPART\tEXCERPT")
	for _, e := range r.GetEvents() {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", timeString(e.GetTime()), e.GetSeverity(),
			e.GetClass(), e.GetAction(), e.GetService(), e.GetEndpoint(), e.GetClient(), e.GetPart(),
			excerpt(e.GetExcerpt()))
	}
}

func printBlocks(w *tabwriter.Writer, r *apiwardenv1.ListBlocksResponse) {
	fmt.Fprintln(w, "PREFIX\tEXPIRES\tHITS\tREASON")
	for _, b := range r.GetBlocks() {
		expires := "never"
		if b.GetExpires() != nil {
			expires = timeString(b.GetExpires())
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\n", b.GetPrefix(), expires, b.GetHits(), b.GetReason())
	}
}

func printStatus(w *tabwriter.Writer, s *apiwardenv1.Status) {
	fmt.Fprintf(w, "version:\t%s\n", s.GetVersion())
	fmt.Fprintf(w, "mode:\t%s\n", s.GetMode())
	fmt.Fprintf(w, "interfaces:\t%s\n", dash(strings.Join(s.GetInterfaces(), ", ")))
	if s.GetStarted() != nil {
		fmt.Fprintf(w, "started:\t%s\n", timeString(s.GetStarted()))
	}
	keys := make([]string, 0, len(s.GetCounters()))
	for k := range s.GetCounters() {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 0 {
		fmt.Fprintln(w, "counters:\t")
	}
	for _, k := range keys {
		fmt.Fprintf(w, "  %s\t%d\n", k, s.GetCounters()[k])
	}
}

// counts renders a code->count map as "200:6 404:1", numerically sorted.
func counts(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if len(a) != len(b) {
			return len(a) - len(b)
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return dash(strings.Join(parts, " "))
}

// displayZone is where times are shown: the machine's zone (tests pin it).
var displayZone = time.Local

func timeString(t *timestamppb.Timestamp) string {
	if t == nil {
		return "-"
	}
	return t.AsTime().In(displayZone).Format(time.DateTime)
}

// excerpt quotes an attack excerpt (it may hold control characters) and
// cuts it to excerptWidth runes.
func excerpt(s string) string {
	if r := []rune(s); len(r) > excerptWidth {
		s = string(r[:excerptWidth]) + "…"
	}
	return strconv.Quote(s)
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
