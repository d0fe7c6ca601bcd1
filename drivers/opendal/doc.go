// Package opendal owns the jsn.opendal.v1 interface: files in a storage attached to the
// exporter, which the lease holder reads, writes, lists, stats and deletes. Its driver is
// opendal.Opendal (Jumpstarter's Opendal) with the fs scheme: a directory of the exporter,
// confined with os.Root so that no path (.., absolute, a symlink) leaves it. Other OpenDAL
// schemes (s3, gcs, …) are not supported and are refused at load time.
//
// Nothing here reaches the bus or NATS (internal/layering checks).
package opendal
