{{- define "apiwarden.labels" -}}
app.kubernetes.io/name: apiwarden
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- define "apiwarden.selector" -}}
app.kubernetes.io/name: apiwarden
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
