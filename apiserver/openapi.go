package apiserver

import (
	"encoding/json"
	"fmt"

	apiwardenv1 "github.com/apiwarden/apiwarden/api/apiwarden/v1"
)

// OpenAPIPath serves the REST API's own OpenAPI (Swagger 2.0) document,
// generated from apiwarden.proto and apiwarden_http.yaml.
const OpenAPIPath = "/v1/openapi.json"

// openAPIDocument is the embedded document with the bearer scheme
// declared, and required when the server checks tokens.
func openAPIDocument(auth bool) []byte {
	var doc map[string]any
	if err := json.Unmarshal(apiwardenv1.OpenAPIv2, &doc); err != nil {
		panic(fmt.Sprintf("apiserver: embedded OpenAPI document: %v", err))
	}
	doc["securityDefinitions"] = map[string]any{
		"bearer": map[string]any{
			"type": "apiKey", "in": "header", "name": "Authorization",
			"description": `"Bearer <token>"; required when the agent's API listens beyond loopback (apiTokenFile).`,
		},
	}
	if auth {
		doc["security"] = []any{map[string]any{"bearer": []any{}}}
	}
	if info, ok := doc["info"].(map[string]any); ok {
		info["title"] = "apiwarden agent API"
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("apiserver: OpenAPI document: %v", err))
	}
	return append(out, '\n')
}
