{{/* Names: the release's, unless it already contains the chart's name (release "counter-api"
gives "counter-api", release "prod" gives "prod-counter-api"). 63 characters at most. */}}
{{- define "counter-api.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "counter-api.redisName" -}}
{{- printf "%s-redis" (include "counter-api.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object; the selector labels are the stable subset. */}}
{{- define "counter-api.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: counter-api
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "counter-api.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "counter-api.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* The Secrets the pods read: the existing ones named in the values, or the chart's own. */}}
{{- define "counter-api.keysSecret" -}}
{{- .Values.apiKeys.existingSecret | default (printf "%s-keys" (include "counter-api.fullname" .)) -}}
{{- end -}}

{{- define "counter-api.redisSecret" -}}
{{- .Values.redis.existingSecret | default (printf "%s-auth" (include "counter-api.redisName" .)) -}}
{{- end -}}

{{/* Where counter-fcgi finds Redis. */}}
{{- define "counter-api.redisHost" -}}
{{- if eq .Values.redis.mode "external" -}}
{{- required "redis.external.host is required when redis.mode is external" .Values.redis.external.host -}}
{{- else -}}
{{- include "counter-api.redisName" . -}}
{{- end -}}
{{- end -}}

{{- define "counter-api.redisPort" -}}
{{- if eq .Values.redis.mode "external" -}}{{ .Values.redis.external.port }}{{- else -}}6379{{- end -}}
{{- end -}}

{{/* True when the Prometheus Operator's API can be used. */}}
{{- define "counter-api.operatorAPI" -}}
{{- if or .Values.monitoring.assumeOperatorAPI (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true{{- end -}}
{{- end -}}

{{/* A secret value that survives upgrades: the one in the cluster if the Secret exists, else new. */}}
{{- define "counter-api.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .namespace .name -}}
{{- if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum 32 -}}
{{- end -}}
{{- end -}}

{{/* Sentinel mode: every Redis pod's stable name on the headless Service, in order. */}}
{{- define "counter-api.redisPeerList" -}}
{{- $name := include "counter-api.redisName" . -}}
{{- range $i := until (int .Values.redis.sentinel.nodes) -}}
{{ printf "%s-%d.%s-nodes.%s.svc" $name $i $name $.Release.Namespace }}{{ " " }}
{{- end -}}
{{- end -}}

{{- define "counter-api.redisPeers" -}}
{{- include "counter-api.redisPeerList" . | trim -}}
{{- end -}}

{{/* Sentinel mode: each pod's Sentinel, for the app. */}}
{{- define "counter-api.sentinels" -}}
{{- $list := list -}}
{{- range $peer := splitList " " (include "counter-api.redisPeers" .) -}}
{{- $list = append $list (printf "%s:26379" $peer) -}}
{{- end -}}
{{- join "," $list -}}
{{- end -}}
