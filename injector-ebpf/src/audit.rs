//! Pure: one ring-buffer event becomes one JSON audit line. No I/O; the caller supplies the
//! node name, the mode, the boot-to-wall clock offset, and each side's cgroup path and the
//! names the Pod index has for it ([`Side`]).

use crate::cgroup;
use crate::maps::{Action, Event, Hook, Proc, SYSCALL_IA32, SYSCALL_X32, What};
use crate::pods::Names;
use serde_json::{Value, json};

/// What the guard knows of one side of an event besides the BPF record: its cgroup path (from
/// which the Pod UID and container id are parsed) and, with `--kube-pod-names`, the names the
/// Pod index gave that UID and container id (`None` fields when unknown).
#[derive(Clone, Copy, Debug, Default)]
pub struct Side<'a> {
    pub cgroup: Option<&'a str>,
    pub names: Option<&'a Names>,
}

impl<'a> Side<'a> {
    /// A side known by its cgroup path only (no Pod names).
    pub fn cgroup(cgroup: Option<&'a str>) -> Self {
        Side { cgroup, names: None }
    }
}

/// Context of every line of one guard run.
#[derive(Clone, Debug)]
pub struct LineCtx<'a> {
    pub node: &'a str,
    pub mode: &'a str,
    /// Wall-clock nanoseconds since the epoch minus `CLOCK_BOOTTIME` nanoseconds.
    pub boot_to_wall_ns: i128,
}

/// The audit line for `ev` (without a trailing newline).
pub fn line(ev: &Event, reader: Side<'_>, target: Side<'_>, ctx: &LineCtx<'_>) -> String {
    let action = Action::from_u32(ev.action);
    let kind = match action {
        Some(Action::Protected) => "protect",
        Some(Action::Released) => "release",
        _ => "attempt",
    };
    let mut v = json!({
        "time": rfc3339_ns(i128::from(ev.boot_ns) + ctx.boot_to_wall_ns),
        "node": ctx.node,
        "mode": ctx.mode,
        "event": kind,
        "action": action.map_or("unknown", Action::name),
        "hook": hook_name(ev),
        "attempt": attempt_name(ev),
        "syscall": syscall_name(ev.syscall),
        "reader": party(&ev.reader, reader),
        "target": party(&ev.target, target),
    });
    if ev.target.pad & crate::maps::TARGET_IN_CREATION != 0 {
        v["target"]["in_creation"] = json!(true);
    }
    if action == Some(Action::Exposed) {
        // Never "killed" where the data could still be read (see SECURITY.md, shared fd table).
        v["note"] = json!(
            "reader killed, but it shares its fd table with another process (CLONE_FILES) that may still \
             read through the fd: treat the target's data as read"
        );
    }
    v.to_string()
}

/// The x86_64 number of the same syscall for an event's (possibly i386 or x32) number, and the
/// ABI's name; i386 numbers come marked with [`SYSCALL_IA32`], x32 ones with [`SYSCALL_X32`].
pub fn native_syscall(nr: i32) -> (i32, Option<&'static str>) {
    if nr < 0 {
        return (nr, None);
    }
    let n = nr as u32;
    if n & SYSCALL_X32 != 0 {
        let n = (n & !SYSCALL_X32) as i32;
        let native = match n {
            521 => 101,
            539 => 310,
            540 => 311,
            n => n,
        };
        return (native, Some("x32"));
    }
    if n & SYSCALL_IA32 != 0 {
        let native = match (n & !SYSCALL_IA32) as i32 {
            5 => 2,
            8 => 85,
            26 => 101,
            295 => 257,
            298 | 336 => 298,
            342 => 304,
            347 => 310,
            348 => 311,
            n @ (425 | 426 | 437 | 438) => n,
            n => return (-(n + 1), Some("i386")),
        };
        return (native, Some("i386"));
    }
    (nr, None)
}

/// The summary line written when the rate limiter suppressed lines.
/// `lines` names the stream that was limited: `attempt` or `lifecycle` (protect/release).
pub fn suppressed_line(lines: &str, suppressed: u64, window_secs: u64, wall_ns: i128, ctx: &LineCtx<'_>) -> String {
    json!({
        "time": rfc3339_ns(wall_ns),
        "node": ctx.node,
        "mode": ctx.mode,
        "event": "rate_limited",
        "lines": lines,
        "suppressed": suppressed,
        "window_s": window_secs,
    })
    .to_string()
}

/// The line written when the ring buffer was full and `lost` records of stream `lines` never
/// reached the guard (the decisions were still enforced; only their lines are missing).
pub fn lost_line(lines: &str, lost: u64, wall_ns: i128, ctx: &LineCtx<'_>) -> String {
    json!({
        "time": rfc3339_ns(wall_ns),
        "node": ctx.node,
        "mode": ctx.mode,
        "event": "lost",
        "lines": lines,
        "lost": lost,
        "cause": "ring buffer full",
    })
    .to_string()
}

/// The hook, naming the exact syscall tracepoint where one program serves several.
fn hook_name(ev: &Event) -> &'static str {
    match (Hook::from_u32(ev.hook), native_syscall(ev.syscall).0) {
        (Some(Hook::SysExitOpen), 257) => "tracepoint/sys_exit_openat",
        (Some(Hook::SysExitOpen), 437) => "tracepoint/sys_exit_openat2",
        (Some(Hook::SysExitOpen), 85) => "tracepoint/sys_exit_creat",
        (Some(Hook::SysExitOpen), 304) => "tracepoint/sys_exit_open_by_handle_at",
        (Some(Hook::SysEnterVmRw), 310) => "tracepoint/sys_enter_process_vm_readv",
        (Some(Hook::SysEnterVmRw), 311) => "tracepoint/sys_enter_process_vm_writev",
        (h, _) => h.map_or("unknown", Hook::name),
    }
}

/// What `ev` attempted, as its audit line's `attempt` (and the metric's label) names it. The
/// LSM ATTACH-mode check is shared by ptrace, process_vm_* and pidfd_getfd; the reader's
/// syscall says which.
pub fn attempt_name(ev: &Event) -> &'static str {
    match (What::from_u32(ev.what), native_syscall(ev.syscall).0) {
        (Some(What::Attach), 101) => What::Ptrace.name(),
        (Some(What::Attach), 310) => What::VmRead.name(),
        (Some(What::Attach), 311) => What::VmWrite.name(),
        (Some(What::Attach), 438) => What::PidfdGetfd.name(),
        (w, _) => w.map_or("unknown", What::name),
    }
}

/// One side of the line: the process, its cgroup, the ids parsed from the cgroup path (always,
/// whatever the API server says) and the names of that Pod and container (null when unknown:
/// `--kube-pod-names` off, the API server unreachable, the Pod not yet or no longer listed).
fn party(p: &Proc, side: Side<'_>) -> Value {
    let id = side.cgroup.map(cgroup::identity).unwrap_or_default();
    let names = side.names.cloned().unwrap_or_default();
    json!({
        "pid": p.pid,
        "tgid": p.tgid,
        "comm": p.comm(),
        "uid": p.uid,
        "cgroup_id": p.cgroup_id,
        "cgroup": side.cgroup,
        "container_id": id.container_id,
        "pod_uid": id.pod_uid,
        "namespace": names.namespace,
        "pod": names.pod,
        "container": names.container,
    })
}

/// Syscall names the hooks can see: x86_64 numbers, and i386/x32 ones prefixed with their ABI
/// (`i386:openat`).
pub fn syscall_name(nr: i32) -> Value {
    if nr < 0 {
        return Value::Null;
    }
    let (native, abi) = native_syscall(nr);
    let name = match native {
        n if n < 0 => return Value::String(format!("{}:nr_{}", abi.unwrap_or("?"), -(n + 1))),
        2 => "open",
        85 => "creat",
        298 => "perf_event_open",
        304 => "open_by_handle_at",
        101 => "ptrace",
        257 => "openat",
        310 => "process_vm_readv",
        311 => "process_vm_writev",
        425 => "io_uring_setup",
        426 => "io_uring_enter",
        437 => "openat2",
        438 => "pidfd_getfd",
        n => return Value::String(format!("{}nr_{n}", abi.map(|a| format!("{a}:")).unwrap_or_default())),
    };
    Value::String(match abi {
        Some(a) => format!("{a}:{name}"),
        None => name.to_owned(),
    })
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` for nanoseconds since the Unix epoch (UTC, proleptic
/// Gregorian; days-from-civil inverse after Howard Hinnant).
pub fn rfc3339_ns(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let frac = ns.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i128::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:09}Z", sod / 3600, sod / 60 % 60, sod % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maps::COMM_LEN;

    fn comm(s: &str) -> [u8; COMM_LEN] {
        let mut c = [0; COMM_LEN];
        c[..s.len()].copy_from_slice(s.as_bytes());
        c
    }

    fn ev(action: Action) -> Event {
        Event {
            boot_ns: 5_000_000_123,
            reader: Proc { pid: 11, tgid: 10, uid: 0, pad: 0, cgroup_id: 7, comm: comm("cat") },
            target: Proc { pid: 20, tgid: 20, uid: 1000, pad: 0, cgroup_id: 8, comm: comm("app") },
            hook: Hook::SysExitOpen as u32,
            what: What::Environ as u32,
            action: action as u32,
            syscall: 257,
        }
    }

    const CTX: LineCtx<'static> =
        LineCtx { node: "node-a", mode: "tracepoint", boot_to_wall_ns: 1_700_000_000_000_000_000 };

    #[test]
    fn attempt_line_has_every_field() {
        let target_cg = "/kubepods/besteffort/pod0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/3f9b2a1c0d4e5f60718293a4b5c6d7e8f9011223344556677889aabbccddeeff";
        let l = line(&ev(Action::Killed), Side::cgroup(Some("/user.slice")), Side::cgroup(Some(target_cg)), &CTX);
        let v: Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["time"], "2023-11-14T22:13:25.000000123Z");
        assert_eq!(v["node"], "node-a");
        assert_eq!(v["mode"], "tracepoint");
        assert_eq!(v["event"], "attempt");
        assert_eq!(v["action"], "killed");
        assert_eq!(v["hook"], "tracepoint/sys_exit_openat");
        assert_eq!(v["attempt"], "open environ");
        assert_eq!(v["syscall"], "openat");
        assert_eq!(v["reader"]["pid"], 11);
        assert_eq!(v["reader"]["tgid"], 10);
        assert_eq!(v["reader"]["comm"], "cat");
        assert_eq!(v["reader"]["cgroup"], "/user.slice");
        assert_eq!(v["reader"]["container_id"], Value::Null);
        assert_eq!(v["target"]["uid"], 1000);
        assert_eq!(v["target"]["cgroup_id"], 8);
        assert_eq!(v["target"]["pod_uid"], "0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(v["target"]["container_id"], "3f9b2a1c0d4e5f60718293a4b5c6d7e8f9011223344556677889aabbccddeeff");
        // Without a Pod index the names are there, null.
        for side in ["reader", "target"] {
            for field in ["namespace", "pod", "container"] {
                assert_eq!(v[side].get(field), Some(&Value::Null), "{side}.{field}");
            }
        }
        assert!(!l.contains('\n'));
    }

    #[test]
    fn names_from_the_pod_index_sit_beside_the_cgroup_ids() {
        let target_cg = "/kubepods/besteffort/pod0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b/3f9b2a1c0d4e5f60718293a4b5c6d7e8f9011223344556677889aabbccddeeff";
        let app =
            Names { namespace: Some("shop".into()), pod: Some("shop-7d9c".into()), container: Some("app".into()) };
        // The reader's Pod is known, its container not yet (just started).
        let debug = Names { namespace: Some("shop".into()), pod: Some("shop-7d9c".into()), container: None };
        let reader = Side { cgroup: Some(target_cg), names: Some(&debug) };
        let target = Side { cgroup: Some(target_cg), names: Some(&app) };
        let v: Value = serde_json::from_str(&line(&ev(Action::Killed), reader, target, &CTX)).unwrap();
        assert_eq!(
            (&v["target"]["namespace"], &v["target"]["pod"], &v["target"]["container"]),
            (&json!("shop"), &json!("shop-7d9c"), &json!("app"))
        );
        // The cgroup-derived ids stay, whatever the index says.
        assert_eq!(v["target"]["pod_uid"], "0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
        assert_eq!(v["target"]["container_id"], "3f9b2a1c0d4e5f60718293a4b5c6d7e8f9011223344556677889aabbccddeeff");
        assert_eq!((&v["reader"]["pod"], &v["reader"]["container"]), (&json!("shop-7d9c"), &Value::Null));
        // The index knows nothing (API unreachable): the ids alone.
        let unknown = Names::default();
        let side = Side { cgroup: Some(target_cg), names: Some(&unknown) };
        let v: Value = serde_json::from_str(&line(&ev(Action::Killed), side, side, &CTX)).unwrap();
        assert_eq!((&v["target"]["pod"], &v["target"]["namespace"]), (&Value::Null, &Value::Null));
        assert_eq!(v["target"]["pod_uid"], "0b6e2f7a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
    }

    #[test]
    fn lifecycle_and_unknown_values() {
        let v: Value =
            serde_json::from_str(&line(&ev(Action::Protected), Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!(v["event"], "protect");
        assert_eq!(v["reader"]["cgroup"], Value::Null);
        let v: Value =
            serde_json::from_str(&line(&ev(Action::Released), Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!(v["event"], "release");
        let mut e = ev(Action::Denied);
        e.hook = 99;
        e.what = 0;
        e.action = 42;
        e.syscall = -1;
        let v: Value = serde_json::from_str(&line(&e, Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!(
            (v["hook"].as_str(), v["attempt"].as_str(), v["action"].as_str()),
            (Some("unknown"), Some("unknown"), Some("unknown"))
        );
        assert_eq!(v["syscall"], Value::Null);
    }

    #[test]
    fn comm_is_escaped_not_trusted() {
        let mut e = ev(Action::Killed);
        e.reader.comm = comm("a\"b\n{c");
        let v: Value = serde_json::from_str(&line(&e, Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!(v["reader"]["comm"], "a\"b\n{c");
    }

    #[test]
    fn hook_and_attempt_are_refined_by_the_syscall() {
        let get = |hook: Hook, what: What, syscall: i32| {
            let e = Event { hook: hook as u32, what: what as u32, syscall, ..ev(Action::Denied) };
            let v: Value = serde_json::from_str(&line(&e, Side::default(), Side::default(), &CTX)).unwrap();
            (v["hook"].as_str().unwrap().to_owned(), v["attempt"].as_str().unwrap().to_owned())
        };
        assert_eq!(get(Hook::SysExitOpen, What::Environ, 2).0, "tracepoint/sys_exit_open");
        assert_eq!(get(Hook::SysExitOpen, What::Mem, 257).0, "tracepoint/sys_exit_openat");
        assert_eq!(get(Hook::SysExitOpen, What::Mem, 437).0, "tracepoint/sys_exit_openat2");
        assert_eq!(get(Hook::SysEnterVmRw, What::VmWrite, 311).0, "tracepoint/sys_enter_process_vm_writev");
        assert_eq!(get(Hook::LsmPtraceAccess, What::Attach, 101).1, "ptrace attach");
        assert_eq!(get(Hook::LsmPtraceAccess, What::Attach, 310).1, "process_vm_readv");
        assert_eq!(get(Hook::LsmPtraceAccess, What::Attach, 438).1, "pidfd_getfd");
        assert_eq!(
            get(Hook::LsmPtraceAccess, What::Attach, 426),
            ("lsm/ptrace_access_check".into(), "ptrace attach access".into())
        );
        assert_eq!(get(Hook::LsmFileOpen, What::Environ, 426).1, "open environ");
    }

    #[test]
    fn syscall_names() {
        assert_eq!(syscall_name(2), "open");
        assert_eq!(syscall_name(437), "openat2");
        assert_eq!(syscall_name(438), "pidfd_getfd");
        assert_eq!(syscall_name(426), "io_uring_enter");
        assert_eq!(syscall_name(0), "nr_0");
        assert_eq!(syscall_name((SYSCALL_IA32 | 295) as i32), "i386:openat");
        assert_eq!(syscall_name((SYSCALL_IA32 | 26) as i32), "i386:ptrace");
        assert_eq!(syscall_name((SYSCALL_IA32 | 1) as i32), "i386:nr_1");
        assert_eq!(syscall_name((SYSCALL_X32 | 257) as i32), "x32:openat");
        assert_eq!(syscall_name((SYSCALL_X32 | 521) as i32), "x32:ptrace");
    }

    #[test]
    fn compat_numbers_refine_hook_and_attempt() {
        let e = Event { what: What::Attach as u32, syscall: (SYSCALL_IA32 | 347) as i32, ..ev(Action::Denied) };
        let v: Value = serde_json::from_str(&line(&e, Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!(v["attempt"], "process_vm_readv");
        assert_eq!(v["syscall"], "i386:process_vm_readv");
        let e = Event { hook: Hook::RawSysExit as u32, syscall: (SYSCALL_IA32 | 295) as i32, ..ev(Action::Killed) };
        let v: Value = serde_json::from_str(&line(&e, Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!((v["hook"].as_str(), v["attempt"].as_str()), (Some("raw_tp/sys_exit"), Some("open environ")));
    }

    #[test]
    fn exposed_is_not_killed_and_says_why() {
        let v: Value =
            serde_json::from_str(&line(&ev(Action::Exposed), Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!(v["action"], "exposed");
        assert!(v["note"].as_str().unwrap().contains("treat the target's data as read"));
        let v: Value =
            serde_json::from_str(&line(&ev(Action::Killed), Side::default(), Side::default(), &CTX)).unwrap();
        assert_eq!(v["note"], Value::Null);
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339_ns(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339_ns(-1), "1969-12-31T23:59:59.999999999Z");
        assert_eq!(rfc3339_ns(951_782_400_000_000_000), "2000-02-29T00:00:00.000000000Z");
        assert_eq!(rfc3339_ns(4_102_444_799_000_000_001), "2099-12-31T23:59:59.000000001Z");
    }

    #[test]
    fn suppressed_summary() {
        let v: Value = serde_json::from_str(&suppressed_line("attempt", 17, 1, 0, &CTX)).unwrap();
        assert_eq!(v["event"], "rate_limited");
        assert_eq!(v["suppressed"], 17);
        assert_eq!(v["lines"], "attempt");
    }

    #[test]
    fn lost_summary() {
        let v: Value = serde_json::from_str(&lost_line("lifecycle", 9, 0, &CTX)).unwrap();
        assert_eq!(
            (v["event"].as_str(), v["lines"].as_str(), v["lost"].as_u64()),
            (Some("lost"), Some("lifecycle"), Some(9))
        );
    }
}
