package main

import "testing"

// The requests hpctl builds, against rpc.py's dry run: every argument,
// including RDMA and VFIO-USER options. TestNvmfCommandsLikeRPCPy covers
// the live server where the daemon serves the target.
func TestNvmfDryRunLikeRPCPy(t *testing.T) {
	const nqn = "nqn.2016-06.io.spdk:cnode1"
	dryRunSame(t, [][]string{
		{"nvmf_create_transport", "-t", "tcp"},
		{"nvmf_create_transport", "-t", "RDMA", "-g", "tgt", "-q", "128", "-m", "4", "-c", "4096", "-i", "131072",
			"-u", "8192", "-a", "32", "-n", "1024", "-b", "32", "--iobuf-large-cache-size", "8", "-z", "-d", "64",
			"-s", "1024", "-r", "-o", "-f", "-y", "1", "-l", "100", "-x", "5", "-w", "-e", "32", "-M", "-I", "-S",
			"--acceptor-poll-rate", "10000", "--ack-timeout", "20", "--data-wr-pool-size", "64",
			"--disable-command-passthru", "--kas", "10", "--min-kato", "1000", "--masked-oncs", "nvmcmps,reservs",
			"--masked-fuses", "all"},
		{"nvmf_create_transport", "-t", "tcp", "--iobuf-small-cache-size", "16", "--masked-oncs", "all"},
		{"nvmf_get_transports"},
		{"nvmf_get_transports", "--trtype", "tcp", "-t", "tgt"},
		{"nvmf_create_subsystem", nqn},
		{"nvmf_create_subsystem", nqn, "-t", "tgt", "-s", "SPDK00000000000001", "-d", "Hyperpath Controller", "-a",
			"-m", "32", "-r", "-i", "1", "-I", "65519", "--dmrsl", "8", "--wzsl", "3", "-p", "-n", "--admin-label", "label"},
		{"nvmf_delete_subsystem", nqn},
		{"nvmf_delete_subsystem", nqn, "-t", "tgt"},
		{"nvmf_subsystem_add_ns", nqn, "Malloc0"},
		{"nvmf_subsystem_add_ns", nqn, "Malloc0", "-t", "tgt", "-p", "/tmp/ptpl", "-n", "7",
			"-g", "00112233445566778899aabbccddeeff", "-e", "0011223344556677", "-u", "ceccf520-691e-4b46-9546-34af789907c5",
			"-a", "2", "-i", "-N"},
		{"nvmf_subsystem_remove_ns", nqn, "1"},
		{"nvmf_subsystem_remove_ns", nqn, "1", "-t", "tgt"},
		{"nvmf_subsystem_add_listener", nqn, "-t", "tcp", "-a", "127.0.0.1", "-s", "4420"},
		{"nvmf_subsystem_add_listener", "discovery", "-t", "rdma", "-a", "::1", "-f", "ipv6", "-s", "4420", "-p", "tgt",
			"-k", "-n", "optimized", "-S", "posix", "--numa-id", "-1"},
		{"nvmf_subsystem_remove_listener", nqn, "-t", "tcp", "-a", "127.0.0.1", "-s", "4420"},
		{"nvmf_subsystem_remove_listener", "discovery", "-t", "tcp", "-a", "127.0.0.1", "-p", "tgt", "-f", "ipv4"},
		{"nvmf_subsystem_add_host", nqn, "nqn.2014-08.org.nvmexpress:uuid:1"},
		{"nvmf_subsystem_add_host", nqn, "nqn.host", "-t", "tgt", "--psk", "key0", "--dhchap-key", "k1", "--dhchap-ctrlr-key", "k2"},
		{"nvmf_subsystem_remove_host", nqn, "nqn.host"},
		{"nvmf_subsystem_remove_host", nqn, "nqn.host", "-t", "tgt", "-T", "500"},
		{"nvmf_subsystem_allow_any_host", nqn, "--allow-any-host"},
		{"nvmf_subsystem_allow_any_host", nqn, "--no-allow-any-host", "-t", "tgt"},
		{"nvmf_get_subsystems"},
		{"nvmf_get_subsystems", nqn, "-t", "tgt"},
		{"nvmf_subsystem_get_controllers", nqn},
		{"nvmf_subsystem_get_controllers", nqn, "-t", "tgt"},
		{"nvmf_subsystem_get_qpairs", nqn},
	})
	usageSame(t, []usageCase{
		{[]string{"nvmf_create_transport"}, 2, "the following arguments are required: -t/--trtype"},
		{[]string{"nvmf_create_transport", "-t", "tcp", "-b", "1", "--iobuf-small-cache-size", "2"}, 2,
			"argument --iobuf-small-cache-size: not allowed with argument -b/--buf-cache-size"},
		{[]string{"nvmf_create_transport", "-t", "tcp", "--masked-oncs", "nvmcmps,bogus"}, 1,
			"Invalid oncs: 'bogus'. Available options: all, nvmcmps, nvmdsmsv, nvmwzsv, reservs, nvmcpys."},
		{[]string{"nvmf_create_transport", "-t", "tcp", "--masked-fuses", "x"}, 1,
			"Invalid fuses: 'x'. Available options: all, fcws."},
		{[]string{"nvmf_subsystem_add_listener", nqn, "-t", "tcp"}, 2, "the following arguments are required: -a/--traddr"},
		{[]string{"nvmf_subsystem_add_listener", nqn, "-t", "tcp", "-a", "x", "-n", "bad"}, 2, "argument -n/--ana-state: invalid choice: 'bad' (choose from 'optimized', 'non_optimized', 'inaccessible')"},
		{[]string{"nvmf_subsystem_add_ns", nqn}, 2, "the following arguments are required: bdev_name"},
		{[]string{"nvmf_subsystem_remove_ns", nqn, "one"}, 2, "argument nsid: invalid int value: 'one'"},
		{[]string{"nvmf_subsystem_allow_any_host", nqn}, 2, "the following arguments are required: --allow-any-host/--no-allow-any-host"},
		{[]string{"nvmf_get_subsystems", "a", "b"}, 2, "unrecognized arguments: b"},
	})
}
