package controller

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
	"go.yaml.in/yaml/v3"

	"jsn.dev/jsn/bus"
	"jsn.dev/jsn/bus/wire"
	"jsn.dev/jsn/controller/api"
)

// Files of a controller data directory written by Init. Seeds are 0600, the directory 0700.
const (
	fileOperatorJWT   = "operator.jwt"
	fileOperatorSeed  = "operator.nk"
	fileSysJWT        = "sys.jwt"
	fileSysSeed       = "sys.nk"
	fileSysCreds      = "sys-user.creds"
	fileLabJWT        = "lab.jwt"
	fileLabSeed       = "lab.nk"
	fileLabSigning    = "lab-signing.nk"
	fileCtlCreds      = "controller.creds"
	fileAdminConfig   = "admin.yaml"
	fileAdminIdentity = "admin.identity" // removed once the first start imported it
	fileAdminReset    = "admin.reset"    // ResetAdmin's new admin identity, applied at the next start
	dirJetStream      = "jetstream"
)

// AdminName is the identity name of the admin client Init creates.
const AdminName = "admin"

// ControllerName is the name of the controller's API user (and of its micro service).
const ControllerName = "jsn-controller"

// stateName is the name of the controller's user for its KV buckets.
const stateName = "jsn-controller-state"

// Limits of every user the controller issues (identities and lease credentials; not its own).
const (
	// DefaultMaxSubscriptions bounds a user's subscriptions on each connection unless
	// Authority.MaxSubs says otherwise. jsn itself needs a handful per connection.
	DefaultMaxSubscriptions = 1000
	// MaxPayload bounds a user's messages: the server's default maximum message size.
	MaxPayload = 1 << 20
)

// Authority holds the keys of a controller data directory: it signs account and user JWTs.
type Authority struct {
	// MaxSubs bounds the subscriptions of each user it issues (0: DefaultMaxSubscriptions).
	MaxSubs int64

	Dir         string
	operator    nkeys.KeyPair
	OperatorJWT string
	SysPub      string
	SysJWT      string
	lab         nkeys.KeyPair // LAB account key (identity only; signs nothing)
	LabPub      string
	LabJWT      string // as written by Init; the live one (with revocations) is in KV
	signing     nkeys.KeyPair
	CtlCreds    []byte // controller user in LAB
	SysCreds    []byte // system user in SYS (pushes account updates)
}

// InitOptions tune Init.
type InitOptions struct {
	// Endpoint is the URL clients and exporters connect to, written into the admin config
	// (default "nats://127.0.0.1:4222").
	Endpoint string
	// CA, if set, is the PEM of the CA written into the admin config, for a controller run with
	// a certificate of its own (Options.TLSCert); otherwise init makes the data directory's CA.
	CA []byte
	// NoTLS makes no CA and writes none: for a controller run with NoTLS, or with a certificate
	// from a CA the clients' systems trust.
	NoTLS bool
}

// ErrAlreadyInitialised is returned by Init for a directory that already holds keys.
var ErrAlreadyInitialised = errors.New("already initialised")

// Init creates the operator, the SYS and LAB accounts, the LAB signing key, the controller's
// user, the system user and an admin client config (DIR/admin.yaml, returned too). It refuses a
// directory that already holds an operator.
func Init(dir string, o InitOptions) (adminConfig []byte, err error) {
	if o.Endpoint == "" {
		o.Endpoint = "nats://127.0.0.1:4222"
	}
	if _, err := os.Stat(filepath.Join(dir, fileOperatorSeed)); err == nil {
		return nil, fmt.Errorf("init %s: %w", dir, ErrAlreadyInitialised)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	opKP, _ := nkeys.CreateOperator()
	opPub, _ := opKP.PublicKey()
	oc := jwt.NewOperatorClaims(opPub)
	oc.Name = "jsn"
	sysKP, _ := nkeys.CreateAccount()
	sysPub, _ := sysKP.PublicKey()
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(opKP)
	if err != nil {
		return nil, fmt.Errorf("init: operator: %w", err)
	}
	sc := jwt.NewAccountClaims(sysPub)
	sc.Name = "SYS"
	sysJWT, err := sc.Encode(opKP)
	if err != nil {
		return nil, fmt.Errorf("init: sys account: %w", err)
	}
	labKP, _ := nkeys.CreateAccount()
	labPub, _ := labKP.PublicKey()
	signKP, _ := nkeys.CreateAccount()
	signPub, _ := signKP.PublicKey()
	lc := jwt.NewAccountClaims(labPub)
	lc.Name = "LAB"
	lc.SigningKeys.Add(signPub)
	lc.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	labJWT, err := lc.Encode(opKP)
	if err != nil {
		return nil, fmt.Errorf("init: lab account: %w", err)
	}
	a := &Authority{Dir: dir, operator: opKP, OperatorJWT: opJWT, SysPub: sysPub, SysJWT: sysJWT,
		lab: labKP, LabPub: labPub, LabJWT: labJWT, signing: signKP}
	a.CtlCreds, _, err = a.newUser(ControllerName, jwt.Permissions{}, time.Time{}, nil)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	// The system user signs with the SYS account key itself.
	sysUserKP, _ := nkeys.CreateUser()
	sysUserPub, _ := sysUserKP.PublicKey()
	uc := jwt.NewUserClaims(sysUserPub)
	uc.Name = "jsn-sys"
	uc.IssuerAccount = ""
	sysUserJWT, err := uc.Encode(sysKP)
	if err != nil {
		return nil, fmt.Errorf("init: system user: %w", err)
	}
	sysUserSeed, _ := sysUserKP.Seed()
	a.SysCreds = api.FormatCreds(sysUserJWT, string(sysUserSeed))

	adminCreds, adminPub, err := a.newUser(AdminName, ClientPermissions(AdminName, true), time.Time{}, nil)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	ca := o.CA
	if ca == nil && !o.NoTLS {
		if ca, _, _, err = loadOrCreateCA(dir); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	adminConfig, err = ClientConfigYAML(AdminName, o.Endpoint, adminCreds, true, nil, ca)
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	adminID, err := wire.Marshal(api.Identity{Name: AdminName, Kind: api.KindClient, PublicKey: adminPub, Admin: true, Created: time.Now().UTC(), Scheme: api.IdentityScheme})
	if err != nil {
		return nil, fmt.Errorf("init: %w", err)
	}
	opSeed, _ := opKP.Seed()
	sysSeed, _ := sysKP.Seed()
	labSeed, _ := labKP.Seed()
	signSeed, _ := signKP.Seed()
	files := []struct {
		name string
		data []byte
	}{
		{fileOperatorJWT, []byte(opJWT)},
		{fileSysJWT, []byte(sysJWT)},
		{fileLabJWT, []byte(labJWT)},
		{fileSysSeed, sysSeed},
		{fileLabSeed, labSeed},
		{fileLabSigning, signSeed},
		{fileSysCreds, a.SysCreds},
		{fileCtlCreds, a.CtlCreds},
		{fileAdminConfig, adminConfig},
		{fileAdminIdentity, adminID},
		{fileOperatorSeed, opSeed}, // last: its presence marks an initialised directory
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	}
	return adminConfig, nil
}

// ResetAdmin issues a new admin credential for the controller data directory dir, for when the
// admin config was lost (or the JetStream store with the admin's identity was). It writes
// DIR/admin.yaml and returns it; the controller applies it at its next start, replacing the
// admin identity and revoking the previous admin key. endpoint "" keeps the one of the existing
// admin.yaml (or nats://127.0.0.1:4222).
func ResetAdmin(dir, endpoint string) (adminConfig []byte, err error) {
	a, err := LoadAuthority(dir)
	if err != nil {
		return nil, fmt.Errorf("reset admin: %w", err)
	}
	// The current admin.yaml, if still there, names the endpoint and the key to revoke (the
	// store may have lost the identity that records it).
	var revoke []string
	if b, err := os.ReadFile(filepath.Join(dir, fileAdminConfig)); err == nil {
		var old struct {
			Endpoint    string `yaml:"endpoint"`
			Credentials string `yaml:"credentials"`
		}
		if yaml.Unmarshal(b, &old) == nil {
			if endpoint == "" {
				endpoint = old.Endpoint
			}
			if j, err := jwt.ParseDecoratedJWT([]byte(old.Credentials)); err == nil {
				if uc, err := jwt.DecodeUserClaims(j); err == nil {
					revoke = append(revoke, uc.Subject)
				}
			}
		}
	}
	if endpoint == "" {
		endpoint = "nats://127.0.0.1:4222"
	}
	creds, pub, err := a.newUser(AdminName, ClientPermissions(AdminName, true), time.Time{}, nil)
	if err != nil {
		return nil, fmt.Errorf("reset admin: %w", err)
	}
	// The data directory's CA, if the controller has one (it makes it at its first start).
	ca, _ := os.ReadFile(filepath.Join(dir, fileCACert))
	if adminConfig, err = ClientConfigYAML(AdminName, endpoint, creds, true, nil, ca); err != nil {
		return nil, fmt.Errorf("reset admin: %w", err)
	}
	id, err := wire.Marshal(adminReset{Identity: api.Identity{Name: AdminName, Kind: api.KindClient, PublicKey: pub, Admin: true, Created: time.Now().UTC(), Scheme: api.IdentityScheme},
		Revoke: revoke})
	if err != nil {
		return nil, fmt.Errorf("reset admin: %w", err)
	}
	// The identity first: an admin.yaml whose key the controller never learns would be useless.
	if err := writeFileAtomic(filepath.Join(dir, fileAdminReset), id); err != nil {
		return nil, fmt.Errorf("reset admin: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(dir, fileAdminConfig), adminConfig); err != nil {
		return nil, fmt.Errorf("reset admin: %w", err)
	}
	return adminConfig, nil
}

// adminReset is the content of DIR/admin.reset.
type adminReset struct {
	Identity api.Identity `msgpack:"identity"`
	Revoke   []string     `msgpack:"revoke"` // previous admin keys known to ResetAdmin
}

// writeFileAtomic writes data to path (mode 0600) through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// LoadAuthority reads the keys Init wrote to dir.
func LoadAuthority(dir string) (*Authority, error) {
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return "", fmt.Errorf("load keys: %s is missing (run jsn controller init --data %s first)", name, dir)
			}
			return "", fmt.Errorf("load keys: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	a := &Authority{Dir: dir}
	var err error
	var s string
	if s, err = read(fileOperatorSeed); err != nil {
		return nil, err
	}
	if a.operator, err = nkeys.FromSeed([]byte(s)); err != nil {
		return nil, fmt.Errorf("load keys: %s: %w", fileOperatorSeed, err)
	}
	if s, err = read(fileLabSeed); err != nil {
		return nil, err
	}
	if a.lab, err = nkeys.FromSeed([]byte(s)); err != nil {
		return nil, fmt.Errorf("load keys: %s: %w", fileLabSeed, err)
	}
	a.LabPub, _ = a.lab.PublicKey()
	if s, err = read(fileLabSigning); err != nil {
		return nil, err
	}
	if a.signing, err = nkeys.FromSeed([]byte(s)); err != nil {
		return nil, fmt.Errorf("load keys: %s: %w", fileLabSigning, err)
	}
	if a.OperatorJWT, err = read(fileOperatorJWT); err != nil {
		return nil, err
	}
	if a.SysJWT, err = read(fileSysJWT); err != nil {
		return nil, err
	}
	sc, err := jwt.DecodeAccountClaims(a.SysJWT)
	if err != nil {
		return nil, fmt.Errorf("load keys: %s: %w", fileSysJWT, err)
	}
	a.SysPub = sc.Subject
	if a.LabJWT, err = read(fileLabJWT); err != nil {
		return nil, err
	}
	if s, err = read(fileCtlCreds); err != nil {
		return nil, err
	}
	a.CtlCreds = []byte(s)
	if s, err = read(fileSysCreds); err != nil {
		return nil, err
	}
	a.SysCreds = []byte(s)
	return a, nil
}

// newUser mints a user of LAB with a fresh nkey and returns its .creds and public key. A zero
// expires means no expiry.
func (a *Authority) newUser(name string, perms jwt.Permissions, expires time.Time, tags []string) (creds []byte, pub string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", fmt.Errorf("new user %s: %w", name, err)
	}
	pub, _ = kp.PublicKey()
	j, err := a.userJWT(name, pub, perms, expires, tags)
	if err != nil {
		return nil, "", err
	}
	seed, _ := kp.Seed()
	return api.FormatCreds(j, string(seed)), pub, nil
}

func (a *Authority) userJWT(name, pub string, perms jwt.Permissions, expires time.Time, tags []string) (string, error) {
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	uc.IssuerAccount = a.LabPub
	uc.Permissions = perms
	uc.Tags.Add(tags...)
	// Every user but the controller's own is bounded: subscriptions and message size.
	if !uc.Tags.Contains("jsn-controller") {
		uc.Limits.Subs = a.maxSubs()
		uc.Limits.Payload = MaxPayload
	}
	if !expires.IsZero() {
		uc.Expires = expires.Unix()
	}
	j, err := uc.Encode(a.signing)
	if err != nil {
		return "", fmt.Errorf("sign user %s: %w", name, err)
	}
	return j, nil
}

// MintLease mints the credential of lease on exporter for client: a fresh nkey whose JWT expires
// at expires and allows exactly the lease's own subjects (LeasePermissions).
func (a *Authority) MintLease(client, exporter, lease string, allow []string, expires time.Time) (*api.Credential, string, error) {
	if !wire.ValidName(client) || !wire.ValidName(exporter) || !wire.ValidName(lease) {
		return nil, "", fmt.Errorf("mint lease credential: client %q, exporter %q, lease %q: want subject tokens", client, exporter, lease)
	}
	seal, err := bus.Seal(a.signing, exporter, lease, client)
	if err != nil {
		return nil, "", err
	}
	perms, err := LeasePermissions(exporter, lease, client, seal, allow)
	if err != nil {
		return nil, "", err
	}
	kp, err := nkeys.CreateUser()
	if err != nil {
		return nil, "", fmt.Errorf("mint lease credential: %w", err)
	}
	pub, _ := kp.PublicKey()
	j, err := a.userJWT(client, pub, perms, expires, []string{"jsn-lease"})
	if err != nil {
		return nil, "", err
	}
	seed, _ := kp.Seed()
	return &api.Credential{JWT: j, Seed: string(seed), Expires: expires}, pub, nil
}

// RevokeIn returns accountJWT re-signed with pubs added to its revocation list (and revocations
// whose credentials have expired by now pruned: prune maps a public key to its JWT's expiry).
func (a *Authority) RevokeIn(accountJWT string, pubs []string, prune map[string]time.Time) (string, error) {
	ac, err := jwt.DecodeAccountClaims(accountJWT)
	if err != nil {
		return "", fmt.Errorf("revoke: %w", err)
	}
	return a.revokeClaims(ac, pubs, prune)
}

// revokeClaims is RevokeIn on decoded claims (which it changes).
func (a *Authority) revokeClaims(ac *jwt.AccountClaims, pubs []string, prune map[string]time.Time) (string, error) {
	now := time.Now()
	for pub, exp := range prune {
		if !exp.IsZero() && exp.Before(now) {
			ac.ClearRevocation(pub)
		}
	}
	for _, p := range pubs {
		// Revoke every JWT issued up to now (+1s: issue times have second resolution).
		ac.RevokeAt(p, now.Add(time.Second))
	}
	j, err := ac.Encode(a.operator)
	if err != nil {
		return "", fmt.Errorf("revoke: sign account: %w", err)
	}
	return j, nil
}

func (a *Authority) maxSubs() int64 {
	if a.MaxSubs > 0 {
		return a.MaxSubs
	}
	return DefaultMaxSubscriptions
}

// NewExporter mints exporter name's identity.
func (a *Authority) NewExporter(name string) (creds []byte, pub string, err error) {
	return a.newUser(name, ExporterPermissions(name), time.Time{}, []string{"jsn-exporter"})
}

// NewClient mints client name's own identity (admin adds the admin API; watch the taps it may
// watch without a lease, see WatchPermissions).
func (a *Authority) NewClient(name string, admin bool, watch ...string) (creds []byte, pub string, err error) {
	p := ClientPermissions(name, admin)
	if err := WatchPermissions(&p, watch); err != nil {
		return nil, "", err
	}
	return a.newUser(name, p, time.Time{}, []string{"jsn-client"})
}

// NewViewer mints viewer name's identity (ViewerPermissions), with no expiry.
func (a *Authority) NewViewer(name string, watch []string) (creds []byte, pub string, err error) {
	p, err := ViewerPermissions(name, watch)
	if err != nil {
		return nil, "", err
	}
	return a.newUser(name, p, time.Time{}, []string{"jsn-viewer"})
}

// MintViewer mints a short-lived credential of viewer kind for name (a viewer, or a client whose
// watch rights a browser gets): ViewerPermissions(name, watch), expiring at expires. Viewer and
// client names share one namespace (the controller refuses a viewer named like a client and the
// reverse), so the credential's inbox _INBOX_v.<name> is nobody else's.
func (a *Authority) MintViewer(name string, watch []string, expires time.Time) (*api.Credential, string, error) {
	p, err := ViewerPermissions(name, watch)
	if err != nil {
		return nil, "", err
	}
	if expires.IsZero() {
		return nil, "", fmt.Errorf("mint viewer credential %s: an expiry is required", name)
	}
	creds, pub, err := a.newUser(name, p, expires, []string{"jsn-viewer"})
	if err != nil {
		return nil, "", err
	}
	j, err := jwt.ParseDecoratedJWT(creds)
	if err != nil {
		return nil, "", err
	}
	kp, err := jwt.ParseDecoratedUserNKey(creds)
	if err != nil {
		return nil, "", err
	}
	seed, _ := kp.Seed()
	return &api.Credential{JWT: j, Seed: string(seed), Expires: expires}, pub, nil
}

// No permission below uses allow_responses: NATS lets a responder publish to the reply subject
// of any request it received, whatever its publish permissions deny, so a requester could name
// JetStream's API or another principal's inbox as its reply. Each principal may instead publish
// replies only into the inboxes of those it serves, and answers only into the requester's own
// (bus.GuardReplies).

// ExporterPermissions are the NATS permissions of exporter e's own identity: its controller API
// subjects and its own jsn.x.<e> and jsn.tap.<e> subjects; replies only into the inboxes of its
// own leases' credentials; its own inbox.
func ExporterPermissions(e string) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add("jsn.ctl.e."+e+".>", "jsn.x."+e+".>", "jsn.tap."+e+".>", bus.InboxPrefix(bus.KindLease, e)+".>",
		api.AuditCallSubject(e, "*")) // its own call events in the audit log
	p.Sub.Allow.Add("jsn.x."+e+".>", bus.InboxPrefix(bus.KindExporter, e)+".>")
	return p
}

// ClientPermissions are the NATS permissions of client c's own identity: its own controller API
// subjects (admin adds the admin API) and its own inbox.
func ClientPermissions(c string, admin bool) jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add("jsn.ctl.c." + c + ".>")
	if admin {
		p.Pub.Allow.Add("jsn.ctl.a." + c + ".>")
	}
	p.Sub.Allow.Add(bus.InboxPrefix(bus.KindClient, c) + ".>")
	return p
}

// ViewerPermissions are the NATS permissions of viewer name (a read-only identity): the viewer
// API (jsn.ctl.v.<name>.>: list exporters and leases, describe exporters), its own inbox
// _INBOX_v.<name>, and watching the taps of the exporters in watch (WatchPermissions; empty
// means none).
func ViewerPermissions(name string, watch []string) (jwt.Permissions, error) {
	var p jwt.Permissions
	if !wire.ValidName(name) {
		return p, fmt.Errorf("viewer name %q is not a subject token", name)
	}
	p.Pub.Allow.Add(api.PrefixViewer + name + ".>")
	p.Sub.Allow.Add(bus.InboxPrefix(bus.KindViewer, name) + ".>")
	return p, WatchPermissions(&p, watch)
}

// WatchPermissions adds to p the right to watch the taps of the exporters in watch (names, or
// "*" for every exporter, present and future): subscribe to jsn.tap.<e>.> (live output and
// history replies) and publish history requests on jsn.x.<e>.history.>. Nothing else of the
// exporter: no call, no describe, no stream.
func WatchPermissions(p *jwt.Permissions, watch []string) error {
	for _, e := range watch {
		if err := CheckWatch(e); err != nil {
			return err
		}
		if e == "*" {
			p.Sub.Allow.Add("jsn.tap.>") // not jsn.tap.*.>: NATS refuses a subscription to jsn.tap.> under it
		} else {
			p.Sub.Allow.Add(wire.TapWildcard(e))
		}
		p.Pub.Allow.Add(wire.HistoryWildcard(e))
	}
	return nil
}

// CheckWatch validates one --watch item: an exporter name or "*".
func CheckWatch(e string) error {
	if e == "*" || wire.ValidName(e) {
		return nil
	}
	return fmt.Errorf("watch %q: want an exporter name (letters, digits, - and _) or * for every exporter; label selectors are not supported (NATS permissions name subjects, not labels)", e)
}

// LeasePermissions are the NATS permissions of client's credential of lease on exporter e: it
// may publish only e's describe, stream and (narrowed by allow) call subjects, and subscribe
// only to its own inbox (bus.SealedInbox: below the lease's, with the client's name and the
// controller's seal, so that the holder and those it shared the lease with neither read each
// other's replies nor name each other's inbox) and its own streams and lease's event subjects;
// it may watch e's taps (WatchPermissions). It reaches nothing of the client's own identity
// (its inbox, its other leases).
func LeasePermissions(e, lease, client, seal string, allow []string) (jwt.Permissions, error) {
	var p jwt.Permissions
	if !wire.ValidName(lease) {
		return p, fmt.Errorf("lease id %q is not a subject token", lease)
	}
	if !wire.ValidName(client) {
		return p, fmt.Errorf("client name %q is not a subject token", client)
	}
	x := "jsn.x." + e + "."
	tok := wire.StreamToken(lease, client) // its own streams only, not those of others holding the lease
	p.Pub.Allow.Add(x+"describe", x+"stream."+tok+".*")
	if len(allow) == 0 {
		p.Pub.Allow.Add(x + "call.>")
	}
	for _, a := range allow {
		s, err := AllowSubject(e, a)
		if err != nil {
			return p, err
		}
		p.Pub.Allow.Add(s)
	}
	p.Sub.Allow.Add(bus.SealedInbox(e, lease, client, seal)+".>", x+"out."+tok+".*", api.EventPrefix(e, lease)+".>")
	return p, WatchPermissions(&p, []string{e})
}

// controllerUsers mints the controller's own two LAB users, each allowed only what it needs (so
// that a bug in one part cannot reach what the other guards):
//   - the API user serves jsn.ctl.> (and micro's $SRV.>) and may publish only replies into
//     client and exporter inboxes (and the _INBOX. prefix NATS tools use) and lease pushes on
//     jsn.x.*.lease: no JetStream, no KV;
//   - the state user reads and writes the controller's KV buckets through JetStream's API and
//     nothing else: it subscribes only to its own inbox, so no request ever reaches it, and it
//     may not delete or purge a stream.
//
// They are minted at every start from the signing key and live only in memory.
func (a *Authority) controllerUsers() (apiCreds, stateCreds []byte, err error) {
	var p jwt.Permissions
	p.Pub.Allow.Add(bus.InboxPrefix(bus.KindClient)+">", bus.InboxPrefix(bus.KindExporter)+">",
		bus.InboxPrefix(bus.KindViewer)+">", "_INBOX.>",
		api.LeasePushSubject("*"), api.DashSubject)
	p.Sub.Allow.Add("jsn.ctl.>", "$SRV.>", bus.InboxPrefix(bus.KindController, ControllerName)+".>")
	if apiCreds, _, err = a.newUser(ControllerName, p, time.Time{}, []string{"jsn-controller"}); err != nil {
		return nil, nil, err
	}
	if stateCreds, _, err = a.newUser(stateName, StatePermissions(), time.Time{}, []string{"jsn-controller"}); err != nil {
		return nil, nil, err
	}
	return apiCreds, stateCreds, nil
}

// StatePermissions are the NATS permissions of the controller's state user: JetStream's API to
// create or update its own buckets, write them, and delete their consumers; reads (stream info,
// message gets, consumers for watches and the pulls of their ordered consumers) of any stream;
// nothing else. It may not delete or purge a
// stream. (Reads are not narrowed per bucket to keep the JWT under NATS's control line limit.)
func StatePermissions() jwt.Permissions {
	var p jwt.Permissions
	p.Pub.Allow.Add("$JS.API.INFO", "$JS.API.STREAM.INFO.*", "$JS.API.STREAM.MSG.GET.*", "$JS.API.DIRECT.GET.>",
		"$JS.API.CONSUMER.CREATE.>", "$JS.API.CONSUMER.INFO.>", "$JS.API.CONSUMER.MSG.NEXT.>", "$JS.FC.>")
	for _, b := range []string{BucketExporters, BucketLeases, BucketQueue, BucketIdentities, BucketLeader, BucketWeb} {
		p.Pub.Allow.Add("$JS.API.STREAM.CREATE.KV_"+b, "$JS.API.STREAM.UPDATE.KV_"+b,
			"$JS.API.CONSUMER.DELETE.KV_"+b+".>", "$KV."+b+".>")
	}
	// The audit log: create it, update its limits, append lease events, read it.
	p.Pub.Allow.Add("$JS.API.STREAM.CREATE."+api.AuditStream, "$JS.API.STREAM.UPDATE."+api.AuditStream,
		"$JS.API.CONSUMER.DELETE."+api.AuditStream+".>", api.AuditLeaseSubject("*", "*"))
	p.Sub.Allow.Add(bus.InboxPrefix(bus.KindController, stateName) + ".>")
	return p
}

// AllowSubject converts an --allow pattern to the call subject it permits on exporter e:
// "power.*" → jsn.x.E.call.power.>, "serial.write" → jsn.x.E.call.serial.write, "*" → all.
func AllowSubject(e, pattern string) (string, error) {
	if err := CheckAllow(pattern); err != nil {
		return "", err
	}
	base := "jsn.x." + e + ".call."
	if pattern == "*" {
		return base + ">", nil
	}
	if p, ok := strings.CutSuffix(pattern, ".*"); ok {
		return base + p + ".>", nil
	}
	return base + pattern, nil
}

// CheckAllow validates an --allow pattern: a dotted driver path with an optional ".*" for every
// method below it, "path.method" for one method, or "*" for everything.
func CheckAllow(pattern string) error {
	if pattern == "*" {
		return nil
	}
	p := strings.TrimSuffix(pattern, ".*")
	if !wire.ValidPath(p) {
		return fmt.Errorf("allow pattern %q: want a driver path (power.*), a method (serial.write) or *", pattern)
	}
	return nil
}
