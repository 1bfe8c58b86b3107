// Package deploy holds no code of its own: its tests check the operator-facing files next to it
// (the root Dockerfile and docker-compose.yml, deploy/kubernetes, deploy/monitoring) with the
// parsers of the real tools (compose-go, the Kubernetes API types in strict mode, kustomize,
// BuildKit's Dockerfile parser). The module is kept out of go.work, like tools/, so that its large
// dependency graph never changes the versions the services build with; run its tests with
// `make test` (GOWORK=off).
package deploy
