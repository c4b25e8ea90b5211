// The kstatus checker of the test tools. hack/tools.sh builds it from a copy of this folder,
// pinning sigs.k8s.io/cli-utils to CLI_UTILS_VERSION from hack/tools.versions (go.sum is made
// there by go mod tidy, never kept in the repository).
module ade.dev/tools/kstatus-check

go 1.24

require sigs.k8s.io/cli-utils v0.37.2
