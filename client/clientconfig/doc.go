// Package clientconfig is the schema of a client config file (distributed mode): the
// controller's endpoint, the identity's name and NATS credentials, its role. The controller
// writes these files (`jsn admin create client`, `jsn controller init`) and package client reads
// them; both use this package, so the controller does not import the client.
//
// Parse decodes strictly, reporting every problem at file:line:col. It is a leaf besides the wire
// contract and yamlconf: no NATS, no files (package client keeps the user's config directory).
package clientconfig
