{{- define "apiwarden.labels" -}}
app.kubernetes.io/name: apiwarden
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "apiwarden.selector" -}}
app.kubernetes.io/name: apiwarden
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- /* apiwarden.tokenSecret: the Secret holding the API token, "" for none. */ -}}
{{- define "apiwarden.tokenSecret" -}}
{{- if .Values.apiToken.existingSecret -}}
{{ .Values.apiToken.existingSecret }}
{{- else if .Values.apiToken.value -}}
{{ .Release.Name }}-api-token
{{- end -}}
{{- end }}
