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
{{- required "redis.external.host (or redis.external.clusterNodes) is required when redis.mode is external" .Values.redis.external.host -}}
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

{{/* Cluster mode: every node's stable name and port, comma-separated (the app's REDIS_CLUSTER_NODES). */}}
{{- define "counter-api.redisClusterNodes" -}}
{{- $name := include "counter-api.redisName" . -}}
{{- $c := .Values.redis.cluster -}}
{{- $list := list -}}
{{- range $i := until (int (mul $c.primaries (add 1 $c.replicasPerPrimary))) -}}
{{- $list = append $list (printf "%s-%d.%s-nodes.%s.svc:6379" $name $i $name $.Release.Namespace) -}}
{{- end -}}
{{- join "," $list -}}
{{- end -}}

{{/* Values that pass the schema one by one but not together: the render fails with a line that
says which, instead of objects the API server refuses or a cluster that cannot fail over. */}}
{{- define "counter-api.checkValues" -}}
{{- $v := .Values -}}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d): the API server refuses such an HPA" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) -}}
{{- end -}}
{{- if $v.podDisruptionBudget.enabled -}}
{{- $least := ternary $v.autoscaling.minReplicas $v.replicas $v.autoscaling.enabled | int -}}
{{- if ge (int $v.podDisruptionBudget.minAvailable) $least -}}
{{- fail (printf "podDisruptionBudget.minAvailable (%d) must be below the fewest pods the Deployment may run (%d, %s): otherwise no node can ever be drained" (int $v.podDisruptionBudget.minAvailable) $least (ternary "autoscaling.minReplicas" "replicas" $v.autoscaling.enabled)) -}}
{{- end -}}
{{- end -}}
{{- if eq $v.redis.mode "sentinel" -}}
{{- $s := $v.redis.sentinel -}}
{{- if gt (int $s.quorum) (int $s.nodes) -}}
{{- fail (printf "redis.sentinel.quorum (%d) is above redis.sentinel.nodes (%d): the Sentinels could never agree that the primary is down, so there would be no failover" (int $s.quorum) (int $s.nodes)) -}}
{{- end -}}
{{- if gt (int $s.waitReplicas) (sub (int $s.nodes) 1) -}}
{{- fail (printf "redis.sentinel.waitReplicas (%d) needs that many replicas, but %d nodes have %d" (int $s.waitReplicas) (int $s.nodes) (sub (int $s.nodes) 1)) -}}
{{- end -}}
{{- end -}}
{{- if eq $v.redis.mode "cluster" -}}
{{- $c := $v.redis.cluster -}}
{{- if gt (int $c.waitReplicas) (int $c.replicasPerPrimary) -}}
{{- fail (printf "redis.cluster.waitReplicas (%d) needs that many replicas per primary, but redis.cluster.replicasPerPrimary is %d" (int $c.waitReplicas) (int $c.replicasPerPrimary)) -}}
{{- end -}}
{{- end -}}
{{- /* Placeholders from the docs would pass `required` and fail later, out of sight: the ALB
controller cannot find the certificate (while `helm --wait` still succeeds), or the pods cannot
pull their images. */ -}}
{{- if and $v.ingress.enabled (eq $v.ingress.className "alb") -}}
{{- $arn := toString $v.ingress.aws.certificateArn -}}
{{- if or (contains ":123456789012:" $arn) (hasSuffix "/00000000-0000-0000-0000-000000000000" $arn) -}}
{{- fail (printf "ingress.aws.certificateArn (%s) is the documentation's example: set your ACM certificate's ARN (Terraform's output certificate_arn)" $arn) -}}
{{- end -}}
{{- end -}}
{{- range $name, $image := $v.image -}}
{{- if and (kindIs "map" $image) (contains "example-org/" (toString $image.repository)) -}}
{{- fail (printf "image.%s.repository (%s) is the documentation's example: set your registry (the pipeline pins it with the digest it pushed)" $name $image.repository) -}}
{{- end -}}
{{- end -}}
{{- if ne $v.redis.mode "external" -}}
{{- $st := $v.redis.standalone -}}
{{- $limit := include "counter-api.mebibytes" (default "" (dig "limits" "memory" "" $st.resources)) | int -}}
{{- $max := include "counter-api.mebibytes" $st.maxmemory | int -}}
{{- if and $limit (lt $limit (mul 2 $max)) -}}
{{- fail (printf "redis.standalone.resources.limits.memory (%s) must be at least twice redis.standalone.maxmemory (%s): a fork for a resync or an AOF rewrite can double Redis's memory, and the kernel would kill it" (dig "limits" "memory" "" $st.resources) $st.maxmemory) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A memory size in MiB, rounded down, from Kubernetes' quantities (Ki, Mi, Gi, K, M, G, bytes)
or Redis's (kb, mb, gb: powers of 1024); "" gives 0. */}}
{{- define "counter-api.mebibytes" -}}
{{- $text := toString . -}}
{{- $number := regexFind "^[0-9]+" $text | default "0" | int64 -}}
{{- $unit := trimPrefix (toString $number) $text -}}
{{- if or (eq $unit "Gi") (eq $unit "gb") -}}{{ mul $number 1024 }}
{{- else if or (eq $unit "Mi") (eq $unit "mb") -}}{{ $number }}
{{- else if or (eq $unit "Ki") (eq $unit "kb") -}}{{ div $number 1024 }}
{{- else if eq $unit "G" -}}{{ div (mul $number 1000000000) 1048576 }}
{{- else if eq $unit "M" -}}{{ div (mul $number 1000000) 1048576 }}
{{- else if eq $unit "K" -}}{{ div (mul $number 1000) 1048576 }}
{{- else -}}{{ div $number 1048576 }}
{{- end -}}
{{- end -}}
