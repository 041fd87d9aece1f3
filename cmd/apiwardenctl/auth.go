package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Where the CLI finds the agent's bearer token: --token-file, then
// $APIWARDEN_TOKEN_FILE, then $APIWARDEN_TOKEN (the token itself).
const (
	tokenFileEnv = "APIWARDEN_TOKEN_FILE"
	tokenEnv     = "APIWARDEN_TOKEN"
)

// token returns the bearer token to send, "" for none.
func (g *globals) token() (string, error) {
	path := g.tokenFile
	if path == "" && g.getenv != nil {
		path = g.getenv(tokenFileEnv)
	}
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("token file: %w", err)
		}
		tok := strings.TrimSpace(string(data))
		if tok == "" {
			return "", fmt.Errorf("token file %s: empty", path)
		}
		return tok, nil
	}
	if g.getenv != nil {
		return strings.TrimSpace(g.getenv(tokenEnv)), nil
	}
	return "", nil
}

// dial connects to the agent, sending the bearer token on every call when
// one is configured.
func (g *globals) dial() (*grpc.ClientConn, error) {
	tok, err := g.token()
	if err != nil {
		return nil, err
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxRecvBytes)),
	}
	if tok != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer(tok)))
	}
	conn, err := grpc.NewClient(g.addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("agent address %q: %w", g.addr, err)
	}
	return conn, nil
}

// bearer sends "authorization: Bearer <token>". The API is plaintext h2c
// (loopback by default; exposed, it belongs behind TLS or on a trusted
// network), so transport security is not required here.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }
