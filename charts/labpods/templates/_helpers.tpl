{{/* Labels every object of the chart carries. */}}
{{- define "labpods.labels" -}}
app.kubernetes.io/name: labpods
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: labpods
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* What selects the operator's pods (never changes across upgrades: a Deployment's
     selector is immutable). */}}
{{- define "labpods.selector" -}}
app.kubernetes.io/name: labpods
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The operator's identity: the user the apiserver sees for its requests. */}}
{{- define "labpods.operator" -}}
system:serviceaccount:{{ .Release.Namespace }}:labpods
{{- end -}}

{{- define "labpods.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}
