{{- define "kubemedic.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubemedic.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kubemedic.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kubemedic.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kubemedic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubemedic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kubemedic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubemedic.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Namespaces where Secrets may be read: the configured scope
(config.cluster.namespaces) minus exclude_namespaces, as a JSON list.
An empty scope (all namespaces) grants no Secret access at all.
*/}}
{{- define "kubemedic.secretNamespaces" -}}
{{- $cluster := .Values.config.cluster | default dict -}}
{{- $exclude := $cluster.exclude_namespaces | default list -}}
{{- $out := list -}}
{{- range ($cluster.namespaces | default list) -}}
{{- if not (has . $exclude) -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- $out | uniq | toJson -}}
{{- end -}}

{{/*
The claim holding state_dir (audit trail, proposals) when persistence is on.
*/}}
{{- define "kubemedic.stateClaim" -}}
{{- .Values.persistence.existingClaim | default (printf "%s-state" (include "kubemedic.fullname" .)) -}}
{{- end -}}
