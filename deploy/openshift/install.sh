#!/usr/bin/env bash
# Installs the Thanos hub (store gateway, receive, querier) into namespace "thanos" of the
# cluster `oc` is logged in to, and optionally the remote-write side of a spoke cluster.
# README.md in this directory explains every command.
#
#   install.sh [--dry-run] [--objstore-config FILE] [--client NAME]... [--anyuid] [--wait]
#   install.sh spoke [--dry-run] --cluster NAME --hub-context CONTEXT
#                    [--mode cluster-monitoring|federate]
#
#   --dry-run          print the commands instead of running them
#   --objstore-config  Thanos objstore YAML (default: config/store-s3-secret.yaml, which must
#                      be edited first)
#   --client NAME      (hub) create the remote-write identity NAME-metrics for spoke NAME;
#                      repeatable
#   --anyuid           (hub) the seed's optional SCC grant for the store gateway; not needed
#   --wait             (hub) wait for the rollouts
#   spoke              run on a spoke (current `oc` context): remote-write to the hub's
#                      receive Route with the token of the hub's NAME-metrics account;
#                      --mode cluster-monitoring (default) configures the platform Prometheus,
#                      --mode federate deploys a Prometheus (Prometheus Operator required)
#                      that federates from it
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
ns=thanos
dry_run=false
objstore_config="$here/config/store-s3-secret.yaml"
clients=()
anyuid=false
wait_rollout=false
mode=hub
cluster=""
hub_context=""
spoke_mode="cluster-monitoring"

die() { echo "install.sh: $*" >&2; exit 1; }

if [ "${1:-}" = spoke ]; then mode=spoke; shift; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=true; shift ;;
    --objstore-config) objstore_config="${2:?}"; shift 2 ;;
    --client) clients+=("${2:?}"); shift 2 ;;
    --anyuid) anyuid=true; shift ;;
    --wait) wait_rollout=true; shift ;;
    --cluster) cluster="${2:?}"; shift 2 ;;
    --hub-context) hub_context="${2:?}"; shift 2 ;;
    --mode) spoke_mode="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

# Prints a command the way a shell would read it back.
show() {
  local out="" word
  for word in "$@"; do
    if [[ "$word" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then out+="$word "; else out+="$(printf '%q' "$word") "; fi
  done
  printf '%s\n' "${out% }"
}
# Runs a command, or prints it with --dry-run.
run() { if $dry_run; then show "$@"; else "$@"; fi; }
# Runs a shell pipeline given as text, or prints it with --dry-run.
run_sh() { if $dry_run; then printf '%s\n' "$1"; else bash -o pipefail -c "$1"; fi; }
# The oauth-proxy cookie secret: 43 random characters, created once (a re-run keeps the
# sessions valid).
random_43='head -c 64 /dev/urandom | base64 | tr -dc A-Za-z0-9 | head -c 43'
ensure_session_secret() {
  run_sh "oc -n $ns get secret $1 >/dev/null 2>&1 || oc -n $ns create secret generic $1 --from-literal=session_secret=\"\$($random_43)\""
}

install_hub() {
  if ! $dry_run && grep -q REPLACE_WITH_ "$objstore_config"; then
    die "edit $objstore_config first (bucket, endpoint, keys) or pass --objstore-config"
  fi
  echo "# 1. namespace"
  run oc apply -f "$here/manifests/00-namespace.yaml"

  echo "# 2. store gateway: bucket credentials, then service account, StatefulSet, Service, PDB"
  run_sh "oc -n $ns create secret generic store-s3-credentials --from-file=store-s3-secret.yaml=$(printf '%q' "$objstore_config") --dry-run=client -o yaml | oc apply -f -"
  run oc apply -f "$here/manifests/10-store-gateway.yaml"
  if $anyuid; then
    run oc -n "$ns" adm policy add-scc-to-user anyuid -z thanos-store-gateway
  fi

  echo "# 3. receive: oauth-proxy session secret, then everything else declaratively"
  ensure_session_secret thanos-receive-proxy
  run oc apply -f "$here/manifests/20-receive.yaml"

  echo "# 4. querier"
  ensure_session_secret thanos-querier-proxy
  run oc apply -f "$here/manifests/30-query.yaml"

  if [ "${#clients[@]}" -gt 0 ]; then
    echo "# 5. remote-write identities, one per spoke"
    local client
    for client in "${clients[@]}"; do
      [[ "$client" =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || die "--client must be a DNS label: $client"
      run_sh "sed 's/east1/$client/g' $(printf '%q' "$here/prometheus/10-hub-remote-write-client.yaml") | oc apply -f -"
    done
  fi

  if $wait_rollout; then
    echo "# 6. wait for the rollouts"
    run oc -n "$ns" rollout status statefulset/thanos-store-gateway --timeout=10m
    run oc -n "$ns" rollout status statefulset/thanos-receive --timeout=10m
    run oc -n "$ns" rollout status deployment/thanos-querier --timeout=10m
  fi

  echo "# remote-write URL for the spokes and the querier UI:"
  run_sh "echo \"https://\$(oc -n $ns get route thanos-receive -o jsonpath='{.spec.host}')/api/v1/receive\""
  run_sh "echo \"https://\$(oc -n $ns get route thanos-querier -o jsonpath='{.spec.host}')/\""
}

install_spoke() {
  [ -n "$cluster" ] || die "spoke needs --cluster NAME (the hub identity is NAME-metrics)"
  [ -n "$hub_context" ] || die "spoke needs --hub-context CONTEXT (the oc context of the hub)"
  local target_ns files
  case "$spoke_mode" in
    cluster-monitoring) target_ns=openshift-monitoring; files=("$here/prometheus/30-cluster-monitoring-config.yaml") ;;
    federate) target_ns=thanos; files=("$here/prometheus/20-federated-prometheus.yaml") ;;
    *) die "--mode is cluster-monitoring or federate" ;;
  esac
  local hub
  hub="oc --context $(printf '%q' "$hub_context") -n $ns"
  echo "# 1. the hub's receive host, its router CA, and the token of $cluster-metrics"
  run_sh "$hub get route thanos-receive -o jsonpath='{.spec.host}' > receive-host.txt"
  run_sh "oc --context $(printf '%q' "$hub_context") -n openshift-config-managed get configmap default-ingress-cert -o jsonpath='{.data.ca-bundle\\.crt}' > hub-ingress-ca.crt"
  run_sh "$hub get secret $cluster-metrics-token -o jsonpath='{.data.token}' | base64 -d > remote-write-token.txt"

  echo "# 2. the token and CA in the spoke namespace $target_ns"
  if [ "$spoke_mode" = federate ]; then
    run oc apply -f "$here/manifests/00-namespace.yaml"
  fi
  run_sh "oc -n $target_ns create secret generic thanos-remote-write-token --from-file=token=remote-write-token.txt --dry-run=client -o yaml | oc apply -f -"
  run_sh "oc -n $target_ns create secret generic thanos-hub-ingress-ca --from-file=ca.crt=hub-ingress-ca.crt --dry-run=client -o yaml | oc apply -f -"
  if [ "$spoke_mode" = federate ]; then
    run_sh "oc -n $target_ns create secret generic federate-scrape-config --from-file=federate.yaml=$(printf '%q' "$here/prometheus/federate-scrape-config.yaml") --dry-run=client -o yaml | oc apply -f -"
  fi

  echo "# 3. remote write to the hub"
  if [ "$spoke_mode" = cluster-monitoring ]; then
    echo "# (replaces an existing cluster-monitoring-config; merge by hand if you have one)"
  fi
  run_sh "sed -e \"s/THANOS_RECEIVE_HOST/\$(cat receive-host.txt)/\" -e 's/east1/$cluster/g' $(printf '%q' "${files[0]}") | oc apply -f -"
}

if [ "$mode" = hub ]; then install_hub; else install_spoke; fi
