{{/*
Pieces several templates share. Object names are fixed, as in the kustomize
overlay (values.yaml says why), so no helper computes a "fullname".
*/}}

{{/*
Labels on every object and pod template. name/component/partOf follow the
overlay object for object; Helm's own four follow the chart conventions.
Selectors never include them: selectors are immutable and stay the overlay's.
"stable" true leaves out the two that change with each chart version: for
fields Kubernetes refuses to update (a StatefulSet's volumeClaimTemplates), and
for the Postgres pod, which a new chart version alone must not restart.
Call: include "kindling.labels" (dict "ctx" $ "name" "kindling" "component" "api")
*/}}
{{- define "kindling.labels" -}}
{{- $labels := dict
  "app.kubernetes.io/managed-by" .ctx.Release.Service
  "app.kubernetes.io/instance" .ctx.Release.Name -}}
{{- if not .stable }}
{{- $_ := set $labels "helm.sh/chart" (printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-") }}
{{- $_ := set $labels "app.kubernetes.io/version" .ctx.Chart.AppVersion }}
{{- end }}
{{- with .name }}{{ $_ := set $labels "app.kubernetes.io/name" . }}{{ end -}}
{{- with .component }}{{ $_ := set $labels "app.kubernetes.io/component" . }}{{ end -}}
{{- if ne .partOf false }}{{ $_ := set $labels "app.kubernetes.io/part-of" "kindling" }}{{ end -}}
{{- toYaml $labels -}}
{{- end }}
{{/*
Annotations of what the migration hook needs before it runs. Helm runs hooks
before it creates the release's other objects, so the ServiceAccount, the
ConfigMap and a chart-made Secret are hooks too, created first; Helm replaces
them on every upgrade and leaves them in place on uninstall.
*/}}
{{- define "kindling.hookDependency" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: "-10"
helm.sh/hook-delete-policy: before-hook-creation
{{- end }}

{{/* The API's image: repository, tag (default: appVersion), digest if set. */}}
{{- define "kindling.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- with .Values.image.digest }}{{ $ref = printf "%s@%s" $ref . }}{{ end -}}
{{ $ref }}
{{- end }}

{{/* Where the database listens: the bundled Postgres's Service, or the external host. */}}
{{- define "kindling.databaseHost" -}}
{{ if .Values.database.external.enabled }}{{ .Values.database.external.host }}{{ else }}postgres{{ end }}
{{- end }}
{{- define "kindling.databasePort" -}}
{{ if .Values.database.external.enabled }}{{ .Values.database.external.port }}{{ else }}5432{{ end }}
{{- end }}

{{/*
The API's settings as JSON (the ConfigMap's data). ROCKET_ADDRESS/ROCKET_PORT
are fixed: port 8000 is also in the probes, the Service, the NetworkPolicies
and Prometheus's scrape annotation. MIGRATE_ON_START is false: the migration
hook applies migrations, so replicas never race on them.
*/}}
{{- define "kindling.configData" -}}
{{- $c := .Values.config -}}
{{- dict
  "APP_ENVIRONMENT" $c.environment
  "BODY_LIMIT_BYTES" ($c.bodyLimitBytes | int64 | toString)
  "DATABASE_ACQUIRE_TIMEOUT_MS" ($c.databaseAcquireTimeoutMs | int64 | toString)
  "DATABASE_MAX_CONNECTIONS" ($c.databaseMaxConnections | int64 | toString)
  "DATABASE_MIN_CONNECTIONS" ($c.databaseMinConnections | int64 | toString)
  "DATABASE_QUERY_TIMEOUT_MS" ($c.databaseQueryTimeoutMs | int64 | toString)
  "MIGRATE_ON_START" "false"
  "ROCKET_ADDRESS" "0.0.0.0"
  "ROCKET_PORT" "8000"
  "RUST_LOG" $c.rustLog
  "SHUTDOWN_GRACE_SECS" ($c.shutdownGraceSecs | int64 | toString)
  | toJson -}}
{{- end }}

{{/*
kindling-api-config-<hash>, the hash as kustomize's configMapGenerator computes
it (sha256 of {"data":…,"kind":"ConfigMap","name":""}, first ten hex digits with
0 1 3 a e swapped for g h k m t), so that the default values give the overlay's
name and a change of settings rolls the pods.
*/}}
{{- define "kindling.configName" -}}
{{- $data := include "kindling.configData" . | fromJson -}}
{{- $hash := dict "data" $data "kind" "ConfigMap" "name" "" | toJson | sha256sum | trunc 10 -}}
kindling-api-config-{{ $hash | replace "0" "g" | replace "1" "h" | replace "3" "k" | replace "a" "m" | replace "e" "t" }}
{{- end }}

{{/* The checkov skips of the pods that run the API's image, each with its reason. */}}
{{- define "kindling.apiCheckovSkips" -}}
checkov.io/skip1: >-
  CKV_K8S_35=the service reads DATABASE_URL only from its environment
  (fixed contract); it is the one secret key exposed as an env var.
{{- if not .Values.image.digest }}
checkov.io/skip2: >-
  CKV_K8S_43=the prod image reference is a placeholder for the user's registry;
  pin its digest with `kustomize edit set image` when publishing a release.
{{- end }}
{{- end }}

{{/* Pod-level security of the pods that run the API's image (uid 10001). */}}
{{- define "kindling.apiPodSecurity" -}}
automountServiceAccountToken: false
serviceAccountName: kindling-api
# No docker-link style env vars (POSTGRES_PORT=tcp://… would shadow real settings).
enableServiceLinks: false
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* Container-level security: Pod Security "restricted" and a read-only root. */}}
{{- define "kindling.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: {{ .uid }}
  runAsGroup: {{ .uid }}
  capabilities:
    drop: [ALL]
{{- end }}

{{/*
Keeps the API (and the migration hook) from crash-looping while the database
starts. The Postgres image, so nothing extra to pull; -U avoids a passwd lookup
of uid 10001.
*/}}
{{- define "kindling.waitForDatabase" -}}
- name: wait-for-postgres
  image: {{ .Values.postgres.image }}
  imagePullPolicy: IfNotPresent
  command:
    - sh
    - -c
    - >-
      until pg_isready -h {{ include "kindling.databaseHost" . }} -p {{ include "kindling.databasePort" . }}
      -U {{ .Values.database.user }} -d {{ .Values.database.name }} -t 2;
      do echo waiting for postgres; sleep 2; done
  resources:
    requests:
      cpu: 10m
      memory: 16Mi
    limits:
      cpu: 100m
      memory: 64Mi
  {{- include "kindling.containerSecurity" (dict "uid" 10001) | nindent 2 }}
{{- end }}

{{/*
What the API's container and the migration hook's share: image, settings
(the Secret's DATABASE_URL beats the ConfigMap: `env` wins over `envFrom`),
resources, security, and /tmp as the only writable path.
*/}}
{{- define "kindling.apiContainerCommon" -}}
image: {{ include "kindling.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
envFrom:
  - configMapRef:
      name: {{ include "kindling.configName" . }}
env:
  - name: DATABASE_URL
    valueFrom:
      secretKeyRef:
        name: {{ .Values.database.secret.name }}
        key: DATABASE_URL
  - name: POD_NAME
    valueFrom:
      fieldRef:
        fieldPath: metadata.name
  - name: POD_NAMESPACE
    valueFrom:
      fieldRef:
        fieldPath: metadata.namespace
resources:
  {{- toYaml .Values.api.resources | nindent 2 }}
{{- include "kindling.containerSecurity" (dict "uid" 10001) | nindent 0 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- end }}

{{/* The Secret's keys as files for the bundled Postgres and pg_dump (uid 70). */}}
{{- define "kindling.dbCredentialsVolume" -}}
- name: db-credentials
  secret:
    secretName: {{ .Values.database.secret.name }}
    # 0440: group-readable, and fsGroup 70 owns the files.
    defaultMode: 0440
    items:
      - key: POSTGRES_USER
        path: POSTGRES_USER
      - key: POSTGRES_DB
        path: POSTGRES_DB
      - key: POSTGRES_PASSWORD
        path: POSTGRES_PASSWORD
{{- end }}

{{/* The pod security of the bundled Postgres's pods (the image's uid/gid 70). */}}
{{- define "kindling.postgresPodSecurity" -}}
runAsNonRoot: true
runAsUser: 70
runAsGroup: 70
fsGroup: 70
{{- with .fsGroupChangePolicy }}
fsGroupChangePolicy: {{ . }}
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* NetworkPolicy peers: the API and migration pods, and the bundled Postgres. */}}
{{- define "kindling.appPods" -}}
matchExpressions:
  - key: app.kubernetes.io/name
    operator: In
    values: [kindling]
  - key: app.kubernetes.io/component
    operator: In
    values: [api, migration]
{{- end }}
{{- define "kindling.postgresPods" -}}
matchLabels:
  app.kubernetes.io/name: postgres
  app.kubernetes.io/component: database
{{- end }}
{{- define "kindling.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - protocol: UDP
      port: 53
    - protocol: TCP
      port: 53
{{- end }}
