//! `tuning/irq-affinity` against a fake /sys and /proc: a virtio-like NIC with one receive
//! queue, two transmit queues and three interrupts on a four-core host. The dry run writes
//! nothing; `--apply` spreads the interrupts round-robin, turns RPS on over every chosen core
//! (fewer queues than cores), gives each core one transmit queue, and prints the systemd
//! CPUAffinity= that pins the bridge's workers to the same cores.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const IRQS: [u32; 3] = [37, 38, 39];

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/irq-affinity")
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

/// The tree the kernel shows for a virtio NIC: the net device's `device` is the virtio device,
/// whose parent PCI function owns the MSI vectors.
fn fake_host() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write(&r.join("sys/devices/system/cpu/online"), "0-3\n");
    let pci = r.join("sys/devices/pci0000:00/0000:00:03.0");
    for irq in IRQS {
        write(&pci.join("msi_irqs").join(irq.to_string()), "msix\n");
        write(&r.join(format!("proc/irq/{irq}/smp_affinity_list")), "0-3\n");
    }
    std::fs::create_dir_all(pci.join("virtio2")).unwrap();
    let net = r.join("sys/class/net/eth9");
    write(&net.join("queues/rx-0/rps_cpus"), "0\n");
    for tx in ["tx-0", "tx-1"] {
        write(&net.join("queues").join(tx).join("xps_cpus"), "0\n");
    }
    symlink(pci.join("virtio2"), net.join("device")).unwrap();
    std::fs::create_dir_all(r.join("sys/class/net/br0")).unwrap();
    root
}

fn run(args: &[&str]) -> Output {
    let mut child = Command::new("bash")
        .arg(script())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("bash runs");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "irq-affinity ran for more than 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_script_parses() {
    let status = Command::new("bash").arg("-n").arg(script()).status().unwrap();
    assert!(status.success());
}

#[test]
fn dry_run_prints_the_plan_and_writes_nothing() {
    let host = fake_host();
    let root = host.path().to_str().unwrap();
    let output = run(&["--root", root, "eth9"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let out = stdout(&output);
    assert!(out.contains(&format!("would write 0 > {root}/proc/irq/37/smp_affinity_list")), "{out}");
    assert!(out.contains("CPUAffinity=0-3"), "{out}");
    for irq in IRQS {
        assert_eq!(read(&host.path().join(format!("proc/irq/{irq}/smp_affinity_list"))), "0-3");
    }
    assert_eq!(read(&host.path().join("sys/class/net/eth9/queues/rx-0/rps_cpus")), "0");
}

#[test]
fn apply_spreads_interrupts_and_sets_rps_and_xps() {
    let host = fake_host();
    let root = host.path().to_str().unwrap();
    let output = run(&["--apply", "--root", root, "eth9"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let at = |p: &str| read(&host.path().join(p));
    let spread: Vec<_> = IRQS.iter().map(|irq| at(&format!("proc/irq/{irq}/smp_affinity_list"))).collect();
    assert_eq!(spread, ["0", "1", "2"]);
    assert_eq!(at("sys/class/net/eth9/queues/rx-0/rps_cpus"), "f", "one queue, four cores: RPS on all");
    // Core k sends on queue k mod 2: cores 0 and 2 on tx-0, 1 and 3 on tx-1.
    assert_eq!(at("sys/class/net/eth9/queues/tx-0/xps_cpus"), "5");
    assert_eq!(at("sys/class/net/eth9/queues/tx-1/xps_cpus"), "a");

    let output = run(&["--apply", "--root", root, "--cores", "2-3", "eth9"]);
    assert!(output.status.success());
    assert!(stdout(&output).contains("CPUAffinity=2-3"));
    let spread: Vec<_> = IRQS.iter().map(|irq| at(&format!("proc/irq/{irq}/smp_affinity_list"))).collect();
    assert_eq!(spread, ["2", "3", "2"]);
    assert_eq!(at("sys/class/net/eth9/queues/rx-0/rps_cpus"), "c");
}

#[test]
fn virtual_missing_and_bad_input_get_clear_answers() {
    let host = fake_host();
    let root = host.path().to_str().unwrap();
    let virtual_nic = run(&["--root", root, "br0"]);
    assert!(virtual_nic.status.success());
    assert!(stdout(&virtual_nic).contains("virtual interface"), "{}", stdout(&virtual_nic));

    for args in [&["eth7"][..], &["--cores", "9", "eth9"], &["--cores", "0,x", "eth9"], &[]] {
        let output = run(&[&["--root", root][..], args].concat());
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(!output.stderr.is_empty(), "{args:?} says why");
    }
}
