// Package deploy holds no code: it is the folder of jsn's deployment files (systemd units, NATS
// cluster and leaf-node configs, a Containerfile, Kubernetes manifests) and the tests that prove
// them. The tests start a real three-node NATS cluster from the configs in nats/ and run a
// controller against it, and decode every YAML manifest; they must not need root, a container
// engine or a Kubernetes cluster. Its subpackage fault breaks such a deployment on purpose (kill -9
// of servers, controller replicas and exporters, partitions, leaf links cut) and counts what is
// lost.
package deploy
