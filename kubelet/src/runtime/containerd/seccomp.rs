//! Skiff's `RuntimeDefault` seccomp profile: what a container that asks for
//! `seccompProfile: {type: RuntimeDefault}` may call.
//!
//! # Shape (and why)
//! It follows the design of containerd's and Docker's default profiles,
//! written here as data:
//! - **Deny by default with `EPERM`**, not kill: a program probing for a
//!   newer syscall sees an ordinary error and falls back, as it would on an
//!   older kernel or without the privilege.
//! - **One allowlist of everything an ordinary process needs**: files,
//!   memory, signals, time, sockets, SysV/POSIX IPC, process and thread
//!   creation, and the identity calls runc itself makes after the filter is
//!   in place (`setgroups`, `setresuid`, `capset`, `execve`). Names the
//!   architecture lacks (`fstat64` on x86-64) are skipped by runc, so one
//!   list serves 32- and 64-bit ABIs.
//! - **Left out on purpose**: calls that act on the whole machine or on
//!   kernel state that is not namespaced: `keyctl`/`add_key`/`request_key`
//!   (the keyring is not namespaced), `kexec_*`, `reboot`, module loading,
//!   `swapon`, `acct`, `mount`/`unshare`/`setns` (new namespaces are the
//!   usual first step of a container escape), `bpf`, `perf_event_open`,
//!   `userfaultfd` (turns kernel races into reliable exploits), `io_uring_*`
//!   (a large attack surface that bypasses this filter's view), `ptrace`
//!   and cross-process memory calls, clock setting, `open_by_handle_at`
//!   (the "shocker" escape), `lookup_dcookie`, `quotactl`, `vhangup`.
//! - **Given back with the capability that governs them**: when a pod adds
//!   `SYS_ADMIN`, `SYS_PTRACE`, `SYS_TIME`, ... the calls that capability
//!   exists for become allowed, so adding a capability is not silently
//!   undone by the filter.
//! - **Argument filters where a call is only partly safe**: `personality`
//!   only with the harmless personas (Linux, 32-bit, `UNAME26` and the
//!   query value); `clone` only without namespace flags unless the
//!   container has `SYS_ADMIN`; `clone3` hides its flags in memory a filter
//!   cannot read, so without `SYS_ADMIN` it fails with `ENOSYS` and libc
//!   falls back to `clone`.

use std::collections::HashSet;

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

/// `EPERM`: what a refused call returns.
const EPERM: u32 = 1;
/// `ENOSYS`: "no such call", which makes libc fall back from `clone3`.
const ENOSYS: u32 = 38;

/// Namespace flags of `clone(2)`: `CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC
/// | NEWUSER | NEWPID | NEWNET`.
const CLONE_NAMESPACE_FLAGS: u64 = 0x0002_0000 | 0x0200_0000 | 0x7c00_0000;

/// `personality(2)` values that only change reporting, not protections:
/// `PER_LINUX`, `PER_LINUX32`, `UNAME26`, `UNAME26 | PER_LINUX32`, and the
/// query value `0xffffffff`.
const SAFE_PERSONAS: [u64; 5] = [0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

/// What any process may call.
#[rustfmt::skip]
const ALLOWED: &[&str] = &[
    // Files, folders and descriptors.
    "access", "chdir", "chmod", "chown", "chown32", "close", "close_range", "copy_file_range",
    "creat", "dup", "dup2", "dup3", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fchdir", "fchmod", "fchmodat", "fchmodat2", "fchown", "fchown32", "fchownat",
    "fcntl", "fcntl64", "fdatasync", "flock", "fstat", "fstat64", "fstatat64", "fstatfs",
    "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futimesat", "getcwd", "getdents",
    "getdents64", "lchown", "lchown32", "link", "linkat", "_llseek", "lseek", "lstat", "lstat64",
    "mkdir", "mkdirat", "mknod", "mknodat", "newfstatat", "open", "openat", "openat2", "pread64",
    "preadv", "preadv2", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "rename", "renameat", "renameat2", "rmdir", "sendfile", "sendfile64",
    "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "tee", "truncate", "truncate64", "umask", "unlink", "unlinkat",
    "utime", "utimensat", "utimensat_time64", "utimes", "vmsplice", "write", "writev",
    // Extended attributes.
    "fgetxattr", "flistxattr", "fremovexattr", "fsetxattr", "getxattr", "lgetxattr", "listxattr",
    "llistxattr", "lremovexattr", "lsetxattr", "removexattr", "setxattr",
    // Waiting on descriptors and events.
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2",
    "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2", "fanotify_mark", "inotify_add_watch",
    "inotify_init", "inotify_init1", "inotify_rm_watch", "_newselect", "poll", "ppoll",
    "ppoll_time64", "pselect6", "pselect6_time64", "select", "signalfd", "signalfd4",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64",
    // Asynchronous I/O (the old interface; io_uring is left out).
    "io_cancel", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup",
    "io_submit", "ioctl", "ioprio_get", "ioprio_set",
    // Memory.
    "brk", "cachestat", "madvise", "map_shadow_stack", "membarrier", "memfd_create",
    "memfd_secret", "mincore", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mremap", "msync", "munlock", "munlockall", "munmap", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "remap_file_pages",
    // Processes, threads and their identity.
    "capget", "capset", "execve", "execveat", "exit", "exit_group", "fork", "get_robust_list",
    "get_thread_area", "getcpu", "getegid", "getegid32", "geteuid", "geteuid32", "getgid",
    "getgid32", "getgroups", "getgroups32", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit",
    "getrusage", "getsid", "gettid", "getuid", "getuid32", "pidfd_open", "pidfd_send_signal",
    "prctl", "prlimit64", "process_mrelease", "rseq", "sched_get_priority_max",
    "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64",
    "sched_setaffinity", "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield",
    "seccomp", "set_robust_list", "set_thread_area", "set_tid_address", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "setpgid",
    "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "setsid", "setuid", "setuid32",
    "ugetrlimit", "vfork", "wait4", "waitid", "waitpid", "landlock_add_rule",
    "landlock_create_ruleset", "landlock_restrict_self",
    // Futexes.
    "futex", "futex_requeue", "futex_time64", "futex_wait", "futex_waitv", "futex_wake",
    // Signals.
    "kill", "pause", "restart_syscall", "rt_sigaction", "rt_sigpending", "rt_sigprocmask",
    "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sigaltstack", "sigprocmask", "sigreturn",
    "tgkill", "tkill",
    // Time (reading it, sleeping, timers; setting the clock needs SYS_TIME).
    "alarm", "clock_getres", "clock_getres_time64", "clock_gettime", "clock_gettime64",
    "clock_nanosleep", "clock_nanosleep_time64", "getitimer", "gettimeofday", "nanosleep",
    "setitimer", "time", "timer_create", "timer_delete", "timer_getoverrun", "timer_gettime",
    "timer_gettime64", "timer_settime", "timer_settime64", "times",
    // Sockets.
    "accept", "accept4", "bind", "connect", "getpeername", "getsockname", "getsockopt", "listen",
    "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "send", "sendmmsg", "sendmsg",
    "sendto", "setsockopt", "shutdown", "socket", "socketcall", "socketpair",
    // SysV and POSIX IPC (namespaced per pod).
    "ipc", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64",
    "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "msgctl", "msgget", "msgrcv", "msgsnd",
    "semctl", "semget", "semop", "semtimedop", "semtimedop_time64", "shmat", "shmctl", "shmdt",
    "shmget",
    // System information.
    "getrandom", "sysinfo", "uname",
];

/// Calls of one architecture family only.
const X86_ONLY: &[&str] = &["arch_prctl", "modify_ldt"];
const ARM_ONLY: &[&str] = &[
    "arm_fadvise64_64",
    "arm_sync_file_range",
    "breakpoint",
    "cacheflush",
    "set_tls",
    "sync_file_range2",
];

/// Calls a capability exists for, allowed when the container holds it.
const BY_CAPABILITY: &[(Capability, &[&str])] = &[
    (
        Capability::SysAdmin,
        &[
            "bpf",
            "clone",
            "clone3",
            "fanotify_init",
            "fsconfig",
            "fsmount",
            "fsopen",
            "fspick",
            "lookup_dcookie",
            "mount",
            "mount_setattr",
            "move_mount",
            "name_to_handle_at",
            "open_tree",
            "perf_event_open",
            "quotactl",
            "quotactl_fd",
            "setdomainname",
            "sethostname",
            "setns",
            "syslog",
            "umount",
            "umount2",
            "unshare",
        ],
    ),
    (Capability::DacReadSearch, &["open_by_handle_at"]),
    (Capability::SysBoot, &["reboot"]),
    (Capability::SysChroot, &["chroot"]),
    (
        Capability::SysModule,
        &["delete_module", "finit_module", "init_module"],
    ),
    (Capability::SysPacct, &["acct"]),
    (
        Capability::SysPtrace,
        &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "ptrace",
        ],
    ),
    (Capability::SysRawio, &["ioperm", "iopl"]),
    (
        Capability::SysTime,
        &[
            "clock_adjtime",
            "clock_adjtime64",
            "clock_settime",
            "clock_settime64",
            "settimeofday",
            "stime",
            "adjtimex",
        ],
    ),
    (Capability::SysTtyConfig, &["vhangup"]),
    (
        Capability::SysNice,
        &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
    ),
    (Capability::Syslog, &["syslog"]),
    (Capability::Bpf, &["bpf"]),
    (Capability::Perfmon, &["perf_event_open"]),
];

fn rule(names: &[&str], action: LinuxSeccompAction) -> Result<LinuxSyscall, OciSpecError> {
    LinuxSyscallBuilder::default()
        .names(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .action(action)
        .build()
}

/// The architectures the filter covers: the native one and the 32-bit ABIs
/// its kernel also runs.
fn architectures() -> Vec<Arch> {
    match std::env::consts::ARCH {
        "aarch64" => vec![Arch::ScmpArchArm, Arch::ScmpArchAarch64],
        "x86" => vec![Arch::ScmpArchX86],
        _ => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
    }
}

/// The `RuntimeDefault` profile for a process holding `capabilities`.
pub(crate) fn runtime_default(
    capabilities: &HashSet<Capability>,
) -> Result<LinuxSeccomp, OciSpecError> {
    let mut syscalls = vec![rule(ALLOWED, LinuxSeccompAction::ScmpActAllow)?];
    let arch_only = match std::env::consts::ARCH {
        "aarch64" | "arm" => ARM_ONLY,
        _ => X86_ONLY,
    };
    syscalls.push(rule(arch_only, LinuxSeccompAction::ScmpActAllow)?);
    for persona in SAFE_PERSONAS {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["personality".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(0usize)
                        .value(persona)
                        .op(LinuxSeccompOperator::ScmpCmpEq)
                        .build()?,
                ])
                .build()?,
        );
    }
    let mut granted: Vec<&str> = Vec::new();
    for (cap, names) in BY_CAPABILITY {
        if capabilities.contains(cap) {
            for name in names.iter() {
                if !granted.contains(name) {
                    granted.push(name);
                }
            }
        }
    }
    if !granted.is_empty() {
        syscalls.push(rule(&granted, LinuxSeccompAction::ScmpActAllow)?);
    }
    if !capabilities.contains(&Capability::SysAdmin) {
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .args(vec![
                    LinuxSeccompArgBuilder::default()
                        .index(0usize)
                        .value(CLONE_NAMESPACE_FLAGS)
                        .value_two(0u64)
                        .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                        .build()?,
                ])
                .build()?,
        );
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_string()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(ENOSYS)
                .build()?,
        );
    }
    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(EPERM)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(caps: &[Capability]) -> serde_json::Value {
        let set: HashSet<Capability> = caps.iter().copied().collect();
        serde_json::to_value(runtime_default(&set).expect("profile")).expect("json")
    }

    fn allowed_names(v: &serde_json::Value) -> Vec<String> {
        v["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
            .flat_map(|r| r["names"].as_array().expect("names").clone())
            .map(|n| n.as_str().expect("name").to_string())
            .collect()
    }

    #[test]
    fn denies_by_default_with_eperm_and_allows_the_basics() {
        let v = json(&[Capability::Chown]);
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        let allowed = allowed_names(&v);
        for needed in [
            "read",
            "execve",
            "openat",
            "capset",
            "setresuid",
            "exit_group",
        ] {
            assert!(allowed.contains(&needed.to_string()), "{needed}");
        }
        for refused in [
            "mount", "unshare", "setns", "keyctl", "ptrace", "reboot", "bpf",
        ] {
            assert!(!allowed.contains(&refused.to_string()), "{refused}");
        }
        assert!(
            !v["architectures"]
                .as_array()
                .expect("architectures")
                .is_empty()
        );
    }

    #[test]
    fn without_sys_admin_clone_is_filtered_and_clone3_is_enosys() {
        let v = json(&[]);
        let rules = v["syscalls"].as_array().expect("syscalls");
        let clone = rules
            .iter()
            .find(|r| r["names"][0] == "clone")
            .expect("clone rule");
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert_eq!(clone["args"][0]["value"], CLONE_NAMESPACE_FLAGS);
        let clone3 = rules
            .iter()
            .find(|r| r["names"][0] == "clone3")
            .expect("clone3 rule");
        assert_eq!(clone3["action"], "SCMP_ACT_ERRNO");
        assert_eq!(clone3["errnoRet"], 38);
    }

    #[test]
    fn capabilities_give_back_their_calls() {
        let v = json(&[Capability::SysAdmin, Capability::SysPtrace]);
        let allowed = allowed_names(&v);
        for name in ["mount", "unshare", "clone", "clone3", "ptrace"] {
            assert!(allowed.contains(&name.to_string()), "{name}");
        }
        assert!(!allowed.contains(&"reboot".to_string()));
        let rules = v["syscalls"].as_array().expect("syscalls");
        assert!(
            !rules.iter().any(|r| r["action"] == "SCMP_ACT_ERRNO"),
            "no clone3 ENOSYS rule with SYS_ADMIN"
        );
    }

    #[test]
    fn personality_is_limited_to_safe_personas() {
        let v = json(&[]);
        let personas: Vec<u64> = v["syscalls"]
            .as_array()
            .expect("syscalls")
            .iter()
            .filter(|r| r["names"][0] == "personality")
            .map(|r| r["args"][0]["value"].as_u64().expect("value"))
            .collect();
        assert_eq!(personas, SAFE_PERSONAS);
    }
}
