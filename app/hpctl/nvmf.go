package main

import (
	"fmt"
	"slices"
	"strings"
)

// discoveryNQN is the well-known discovery subsystem NQN (NVMe-oF 1.1
// §7.1), which rpc.py accepts as "discovery".
const discoveryNQN = "nqn.2014-08.org.nvmexpress.discovery"

// The ONCS and FUSES feature names nvmf_create_transport may mask.
var (
	maskableONCS  = []string{"nvmcmps", "nvmdsmsv", "nvmwzsv", "reservs", "nvmcpys"}
	maskableFUSES = []string{"fcws"}
)

// maskList is rpc.py's handling of --masked-oncs/--masked-fuses: "all"
// stands for every name; an unknown name is an error.
func maskList(what string, given []string, known []string) ([]string, error) {
	var bad []string
	for _, g := range given {
		if g != "all" && !slices.Contains(known, g) && !slices.Contains(bad, g) {
			bad = append(bad, g)
		}
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("Invalid %s: '%s'. Available options: %s.", what, strings.Join(bad, ", "),
			strings.Join(append([]string{"all"}, known...), ", "))
	}
	if slices.Contains(given, "all") {
		return known, nil
	}
	return given, nil
}

// The NVMe-oF target commands of rpc.py's python/spdk/cli/nvmf.py
// (arguments declared with pyArgs, see bdev.go).
func init() {
	tgtName := func(p *pyArgs, names string) {
		p.flag("tgt_name", names, argStr, "Parent NVMe-oF target name")
	}
	nqnAndTarget := func(name, help string, print Printer) Command {
		return cmd(name, help, print, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN")
			tgtName(p, "t,tgt-name")
			return func() (any, error) { return p.params("nqn", "tgt_name"), nil }
		})
	}
	listenerArgs := func(p *pyArgs) {
		p.pos("nqn", argStr, "Subsystem NQN ('discovery' can be used as shortcut for discovery NQN)")
		p.flag("trtype", "t,trtype", argStr, "NVMe-oF transport type: e.g., rdma").req()
		p.flag("traddr", "a,traddr", argStr, "NVMe-oF transport address: e.g., an ip address").req()
		tgtName(p, "p,tgt-name")
		p.flag("adrfam", "f,adrfam", argStr, "NVMe-oF transport adrfam: e.g., ipv4, ipv6, ib, fc, intra_host")
		p.flag("trsvcid", "s,trsvcid", argStr, "NVMe-oF transport service id: e.g., a port number (required for TCP and RDMA transport types)")
	}
	// listener finishes the params of add/remove_listener the way rpc.py
	// does: the address fields nested under listen_address, "discovery"
	// expanded.
	listener := func(o orderedParams) any {
		o = groupAs(o, "listen_address", "trtype", "traddr", "trsvcid", "adrfam")
		for i := range o {
			if o[i].Key == "nqn" && o[i].Value == "discovery" {
				o[i].Value = discoveryNQN
			}
		}
		return finish(o)
	}

	register(
		cmd("nvmf_create_transport", "Create NVMf transport", nil, func(p *pyArgs) func() (any, error) {
			p.flag("trtype", "t,trtype", argStr, "Transport type (ex. RDMA)").req()
			tgtName(p, "g,tgt-name")
			p.flag("max_queue_depth", "q,max-queue-depth", argInt, "Max number of outstanding I/O per queue")
			p.flag("max_io_qpairs_per_ctrlr", "m,max-io-qpairs-per-ctrlr", argInt, "Max number of IO qpairs per controller")
			p.flag("in_capsule_data_size", "c,in-capsule-data-size", argInt, "Max number of in-capsule data size")
			p.flag("max_io_size", "i,max-io-size", argInt, "Max I/O size (bytes)")
			p.flag("io_unit_size", "u,io-unit-size", argInt, "I/O unit size (bytes). Deprecated, use iobuf_set_options instead.")
			p.flag("max_aq_depth", "a,max-aq-depth", argInt, "Max number of admin cmds per AQ")
			p.flag("num_shared_buffers", "n,num-shared-buffers", argInt, "Number of pooled data buffers available to the transport. Deprecated, use iobuf_set_options instead")
			p.flag("buf_cache_size", "b,buf-cache-size", argInt, "The number of shared buffers to reserve for each poll group. Deprecated, use iobuf-small-cache-size instead")
			p.flag("iobuf_small_cache_size", "iobuf-small-cache-size", argInt, "The number of shared buffers from a small iobuf pool to reserve for each poll group")
			p.exclusive("buf_cache_size", "iobuf_small_cache_size")
			p.flag("iobuf_large_cache_size", "iobuf-large-cache-size", argInt, "Number of shared buffers from the large iobuf pool to reserve for each poll group")
			p.flag("zcopy", "z,zcopy", argStoreTrue, "Use zero-copy operations if the underlying bdev supports them")
			p.flag("num_cqe", "d,num-cqe", argInt, "Number of CQ entries, only used when no_srq=true (RDMA only)")
			p.flag("max_srq_depth", "s,max-srq-depth", argInt, "Number of elements in the per-thread shared receive queue (RDMA only)")
			p.flag("no_srq", "r,no-srq", argStoreTrue, "Disable shared receive queue even for devices that support it (RDMA only)")
			p.flag("c2h_success", "o,c2h-success", argStoreFalse, "Disable C2H success optimization (TCP only)")
			p.flag("dif_insert_or_strip", "f,dif-insert-or-strip", argStoreTrue, "Enable DIF insert for write I/O and DIF strip for read I/O (TCP only)")
			p.flag("sock_priority", "y,sock-priority", argInt, "Socket priority of connections owned by this transport (TCP only)")
			p.flag("acceptor_backlog", "l,acceptor-backlog", argInt, "Number of pending connections allowed in the backlog before failing new connection attempts (RDMA only)")
			p.flag("abort_timeout_sec", "x,abort-timeout-sec", argInt, "Abort execution timeout value, in seconds")
			p.flag("no_wr_batching", "w,no-wr-batching", argStoreTrue, "Disable work requests batching (RDMA only)")
			p.flag("control_msg_num", "e,control-msg-num", argInt, "Number of control messages per poll group (TCP only)")
			p.flag("disable_mappable_bar0", "M,disable-mappable-bar0", argStoreTrue, "Disable client mmap() of BAR0 (VFIO-USER only)")
			p.flag("disable_adaptive_irq", "I,disable-adaptive-irq", argStoreTrue, "Disable adaptive interrupt feature (VFIO-USER only)")
			p.flag("disable_shadow_doorbells", "S,disable-shadow-doorbells", argStoreTrue, "Disable shadow doorbell support (VFIO-USER only)")
			p.flag("acceptor_poll_rate", "acceptor-poll-rate", argInt, "Polling interval of the acceptor for incoming connections (microseconds)")
			p.flag("ack_timeout", "ack-timeout", argInt, "ACK timeout in milliseconds")
			p.flag("data_wr_pool_size", "data-wr-pool-size", argInt, "RDMA data WR pool size (RDMA only)")
			p.flag("disable_command_passthru", "disable-command-passthru", argStoreTrue, "Disallow forwarding unrecognized I/O opcodes and the Identify Namespace admin command to the underlying bdev. Passthrough subsystems and admin_cmd_passthru are unaffected")
			p.flag("kas", "kas", argInt, "KATO (Keep Alive Timeout) granularity in units of 100 milliseconds")
			p.flag("min_kato", "min-kato", argInt, "Minimum Keep Alive Timeout value in milliseconds")
			p.flag("masked_oncs", "masked-oncs", argList, "Comma-separated list of ONCS features to mask (disable). Available options: all, "+strings.Join(maskableONCS, ", "))
			p.flag("masked_fuses", "masked-fuses", argList, "Comma-separated list of FUSES features to mask (disable). Available options: all, "+strings.Join(maskableFUSES, ", "))
			return func() (any, error) {
				o := applyDefaults(p.all(), orderedParams{kv("no_srq", false), kv("c2h_success", true)})
				for _, m := range []struct {
					dest, what string
					known      []string
				}{{"masked_oncs", "oncs", maskableONCS}, {"masked_fuses", "fuses", maskableFUSES}} {
					if given, ok := p.get(m.dest).([]string); ok {
						l, err := maskList(m.what, given, m.known)
						if err != nil {
							return nil, err
						}
						o = setParam(o, m.dest, l)
					}
				}
				return finish(o), nil
			}
		}),
		cmd("nvmf_get_transports", "Display nvmf transports or required transport", PrintDict, func(p *pyArgs) func() (any, error) {
			p.flag("trtype", "trtype", argStr, "Transport type")
			tgtName(p, "t,tgt-name")
			return func() (any, error) { return p.params("trtype", "tgt_name"), nil }
		}),
		cmd("nvmf_get_subsystems", "Display nvmf subsystems or required subsystem", PrintDict, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN").opt()
			tgtName(p, "t,tgt-name")
			return func() (any, error) { return p.params("nqn", "tgt_name"), nil }
		}),
		cmd("nvmf_create_subsystem", "Create an NVMe-oF subsystem", nil, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN")
			tgtName(p, "t,tgt-name")
			p.flag("serial_number", "s,serial-number", argStr, "Serial number of the virtual NVMe controller")
			p.flag("model_number", "d,model-number", argStr, "Model number of the virtual NVMe controller")
			p.flag("allow_any_host", "a,allow-any-host", argStoreTrue, "Allow any host to connect (default: enforce allowed host NQN list)")
			p.flag("max_namespaces", "m,max-namespaces", argInt, "Maximum number of namespaces that can be attached to the subsystem")
			p.flag("ana_reporting", "r,ana-reporting", argStoreTrue, "Enable ANA reporting feature")
			p.flag("min_cntlid", "i,min-cntlid", argInt, "Minimum controller ID")
			p.flag("max_cntlid", "I,max-cntlid", argInt, "Maximum controller ID")
			p.flag("dmrsl", "dmrsl", argInt, "Dataset Management Range Size Limit in logical block units")
			p.flag("wzsl", "wzsl", argInt, "Write Zeroes Size Limit as a power of two (2^wzsl) in units of minimum memory page size")
			p.flag("passthrough", "p,passthrough", argStoreTrue, "Use NVMe passthrough for all I/O commands and namespace-directed admin commands")
			p.flag("enable_nssr", "n,enable-nssr", argStoreTrue, "Enable NSSR (NVMe subsystem reset)")
			p.flag("admin_label", "admin-label", argStr, "Admin label for extended discovery log page entry (4-256 ASCII characters)")
			return func() (any, error) { return finish(p.all()), nil }
		}),
		nqnAndTarget("nvmf_delete_subsystem", "Delete a nvmf subsystem", nil),
		cmd("nvmf_subsystem_add_listener", "Add a listener to an NVMe-oF subsystem", nil, func(p *pyArgs) func() (any, error) {
			listenerArgs(p)
			p.flag("secure_channel", "k,secure-channel", argStoreTrue, "Require all connections to immediately establish a secure channel")
			p.choice("ana_state", "n,ana-state", argStr, "ANA state to set", "optimized", "non_optimized", "inaccessible")
			p.flag("sock_impl", "S,sock-impl", argStr, "Socket implementation to use for the listener")
			p.flag("numa_id", "numa-id", argInt, "Required NUMA node ID for all namespaces, if -1 then any namespace can be used. Default is -1. Relevant only for VFIOUSER transport.")
			return func() (any, error) {
				return listener(applyDefaults(p.all(), orderedParams{kv("tgt_name", nil)})), nil
			}
		}),
		cmd("nvmf_subsystem_remove_listener", "Remove a listener from an NVMe-oF subsystem", nil, func(p *pyArgs) func() (any, error) {
			listenerArgs(p)
			return func() (any, error) { return listener(p.all()), nil }
		}),
		cmd("nvmf_subsystem_add_ns", "Add a namespace to an NVMe-oF subsystem", nil, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN")
			p.pos("bdev_name", argStr, "Name of the bdev to expose as a namespace")
			tgtName(p, "t,tgt-name")
			p.flag("ptpl_file", "p,ptpl-file", argStr, "File path to save/restore persistent reservation information")
			p.flag("nsid", "n,nsid", argInt, "Namespace ID between 1 and 4294967294")
			p.flag("nguid", "g,nguid", argStr, "16-byte namespace globally unique identifier in hexadecimal")
			p.flag("eui64", "e,eui64", argStr, "8-byte namespace EUI-64 in hexadecimal")
			p.flag("uuid", "u,uuid", argStr, `RFC 4122 UUID (e.g. "ceccf520-691e-4b46-9546-34af789907c5")`)
			p.flag("anagrpid", "a,anagrpid", argInt, "ANA group ID")
			p.flag("no_auto_visible", "i,no-auto-visible", argStoreTrue, "Do not auto make namespace visible to controllers")
			p.flag("hide_metadata", "N,hide-metadata", argStoreTrue, "[Deprecated] Enable hide_metadata option to the bdev")
			return func() (any, error) {
				o := applyDefaults(p.all(), orderedParams{kv("tgt_name", nil)})
				return finish(groupAs(o, "namespace", "bdev_name", "ptpl_file", "nsid", "nguid", "eui64", "uuid",
					"anagrpid", "no_auto_visible", "hide_metadata")), nil
			}
		}),
		cmd("nvmf_subsystem_remove_ns", "Remove a namespace to an NVMe-oF subsystem", nil, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN")
			p.pos("nsid", argInt, "Namespace ID")
			tgtName(p, "t,tgt-name")
			return func() (any, error) { return p.params("nqn", "nsid", "tgt_name"), nil }
		}),
		cmd("nvmf_subsystem_add_host", "Add a host to an NVMe-oF subsystem", nil, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN")
			p.pos("host", argStr, "Host NQN to add to the allowed host list")
			tgtName(p, "t,tgt-name")
			p.flag("psk", "psk", argStr, "Pre-shared key name for TLS authentication (TCP only)")
			p.flag("dhchap_key", "dhchap-key", argStr, "DH-HMAC-CHAP key name, required if a controller key is specified")
			p.flag("dhchap_ctrlr_key", "dhchap-ctrlr-key", argStr, "DH-HMAC-CHAP controller key name")
			return func() (any, error) {
				return p.params("nqn", "host", "tgt_name", "psk", "dhchap_key", "dhchap_ctrlr_key"), nil
			}
		}),
		cmd("nvmf_subsystem_remove_host", "Remove a host from an NVMe-oF subsystem", nil, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN")
			p.pos("host", argStr, "Host NQN to remove from the allowed host list")
			tgtName(p, "t,tgt-name")
			p.flag("timeout_ms", "T,timeout-ms", argInt, "Timeout in ms to wait for I/Os to complete (optional). Default value is derived from the controller CAP.TO.")
			return func() (any, error) { return p.params("nqn", "host", "tgt_name", "timeout_ms"), nil }
		}),
		cmd("nvmf_subsystem_allow_any_host", "Allow any host to connect to the subsystem", nil, func(p *pyArgs) func() (any, error) {
			p.pos("nqn", argStr, "Subsystem NQN")
			p.flag("allow_any_host", "allow-any-host", argOptBool, "Allow any host to connect (true) or enforce allowed host NQN list (false)").req()
			tgtName(p, "t,tgt-name")
			return func() (any, error) { return p.params("nqn", "allow_any_host", "tgt_name"), nil }
		}),
		nqnAndTarget("nvmf_subsystem_get_controllers", "Display controllers of an NVMe-oF subsystem.", PrintDict),
		nqnAndTarget("nvmf_subsystem_get_qpairs", "Display queue pairs of an NVMe-oF subsystem.", PrintDict),
	)
}
