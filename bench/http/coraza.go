package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	txhttp "github.com/corazawaf/coraza/v3/http"
)

// corazaDirectives configure Coraza + OWASP CRS v4 the way an inline WAF in
// front of a REST API is deployed: the recommended base configuration with
// the rule engine blocking, request bodies inspected, responses not,
// anomaly scoring blocking at paranoia level %d, REST methods and API
// content types allowed.
const corazaDirectives = `
Include @coraza.conf-recommended
SecRuleEngine On
SecRequestBodyAccess On
SecResponseBodyAccess Off
SecAuditEngine Off
Include @crs-setup.conf.example
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=%d"
SecAction "id:900200,phase:1,pass,t:none,nolog,setvar:'tx.allowed_methods=GET HEAD POST OPTIONS PUT PATCH DELETE'"
SecAction "id:900220,phase:1,pass,t:none,nolog,setvar:'tx.allowed_request_content_type=|application/x-www-form-urlencoded| |multipart/form-data| |multipart/related| |text/xml| |application/xml| |application/soap+xml| |application/json| |application/graphql| |text/plain|'"
Include @owasp_crs/*.conf
`

// newCorazaProxy returns the inline WAF: Coraza's net/http middleware
// around a reverse proxy to upstream (keep-alive connections to it).
func newCorazaProxy(upstream string, pl int) (http.Handler, error) {
	waf, err := coraza.NewWAF(coraza.NewWAFConfig().
		WithRootFS(coreruleset.FS).
		WithDirectives(fmt.Sprintf(corazaDirectives, pl)))
	if err != nil {
		return nil, fmt.Errorf("coraza: %w", err)
	}
	u, err := url.Parse("http://" + upstream)
	if err != nil {
		return nil, err
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.Transport = &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
	}
	return txhttp.WrapHandler(waf, rp), nil
}

// runCorazaProxy is the -coraza-proxy subcommand: it runs in the server
// namespace, listens on listen and forwards to upstream. It prints
// "ready" once the rules are compiled and the socket listens.
func runCorazaProxy(listen, upstream string, pl int) {
	h, err := newCorazaProxy(upstream, pl)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coraza proxy:", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coraza proxy:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	if err := srv.Serve(l); err != nil {
		fmt.Fprintln(os.Stderr, "coraza proxy:", err)
		os.Exit(1)
	}
}
