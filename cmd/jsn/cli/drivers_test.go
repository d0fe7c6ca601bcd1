package cli

// The tests run commands that build driver trees (jsn shell -c, jsn exporter run) in-process:
// link every driver, as the jsn binary does.
import _ "jsn.dev/jsn/drivers/all"
