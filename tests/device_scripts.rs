//! The device scripts against a real system. `end-elevated-linux.sh` runs
//! as root on this machine against a throwaway user's real `sudo` process
//! tree: it must end that tree, and nothing of anybody else's. Where that
//! cannot be set up (not root, no sudo, no useradd), the test says
//! `skipped: …` and why.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRIPT: &str = include_str!("../scripts/device/end-elevated-linux.sh");
const SYSTEM_KEY: &str = "5f00000000000000000a0b1c";

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Removes the user, the sudoers drop-in and every process the test
/// started, however the test ends.
struct Cleanup {
    user: String,
    sudoers: PathBuf,
    children: Vec<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // The whole trees first: sudo killed with KILL relays nothing, and
        // its root-owned sleep would outlive the test.
        for child in &self.children {
            for pid in tree(child.id()) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("pkill")
            .args(["-KILL", "-U", &self.user])
            .status();
        let _ = std::fs::remove_file(&self.sudoers);
        let _ = Command::new("userdel").args(["-f", &self.user]).status();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
}

fn children_of(pid: u32) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-P", &pid.to_string()])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Every descendant of `pid`.
fn tree(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in children_of(p) {
            all.push(c);
            todo.push(c);
        }
    }
    all
}

fn run_script(script: &Path, env: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new("bash");
    command
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_linux_script_ends_the_users_sudo_trees_and_nothing_else() {
    if !cfg!(target_os = "linux") {
        println!("skipped: the Linux script needs Linux");
        return;
    }
    if !is_root() {
        println!("skipped: creating a throwaway user and running the script needs root");
        return;
    }
    for tool in [
        "sudo", "useradd", "userdel", "runuser", "setpriv", "pgrep", "pkill",
    ] {
        if !have(tool) {
            println!("skipped: `{tool}` is not installed (.ci/run installs sudo)");
            return;
        }
    }
    let user = format!("tadm{:08x}", rand::random::<u32>());
    let sudoers = PathBuf::from(format!("/etc/sudoers.d/tempadmin-test-{user}"));
    let mut cleanup = Cleanup {
        user: user.clone(),
        sudoers: sudoers.clone(),
        children: Vec::new(),
    };
    let created = Command::new("useradd")
        .args(["-M", "-s", "/bin/sh", &user])
        .status()
        .unwrap();
    assert!(created.success(), "useradd {user}");
    // No password anywhere: the test user may run sleep through sudo.
    std::fs::write(&sudoers, format!("{user} ALL=(root) NOPASSWD: ALL\n")).unwrap();
    std::fs::set_permissions(
        &sudoers,
        std::os::unix::fs::PermissionsExt::from_mode(0o440),
    )
    .unwrap();
    // A cached credential for the user, where sudo keeps them.
    let ts_dir = Path::new("/run/sudo/ts");
    std::fs::create_dir_all(ts_dir).unwrap();
    let ts_file = ts_dir.join(&user);
    std::fs::write(&ts_file, b"cached").unwrap();

    // The user's elevated work: `sudo sleep 600`, started as the user (the
    // sudo process keeps the user as its real uid).
    let elevated = Command::new("runuser")
        .args(["-u", &user, "--", "sudo", "-n", "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let elevated_pid = elevated.id();
    cleanup.children.push(elevated);
    // Somebody else's process (nobody's), and the test's own.
    let others = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sleep",
            "600",
        ])
        .spawn()
        .unwrap();
    let others_pid = others.id();
    cleanup.children.push(others);
    let own = Command::new("sleep").arg("600").spawn().unwrap();
    let own_pid = own.id();
    cleanup.children.push(own);

    // Wait (bounded) until sudo has started its sleep.
    let deadline = Instant::now() + Duration::from_secs(10);
    let sleeps = loop {
        let sleeps: Vec<u32> = tree(elevated_pid)
            .into_iter()
            .filter(|p| {
                std::fs::read_to_string(format!("/proc/{p}/comm"))
                    .is_ok_and(|c| c.trim() == "sleep")
            })
            .collect();
        if !sleeps.is_empty() {
            break sleeps;
        }
        assert!(Instant::now() < deadline, "sudo did not start sleep");
        std::thread::sleep(Duration::from_millis(50));
    };

    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("jcagent.conf");
    std::fs::write(
        &conf,
        format!("{{\"agentVersion\":\"1.0\",\"systemKey\":\"{SYSTEM_KEY}\"}}"),
    )
    .unwrap();
    let original = "JCAGENT_CONF=/opt/jc/jcagent.conf";
    assert!(SCRIPT.contains(original));
    let script = dir.path().join("end-elevated-linux.sh");
    std::fs::write(
        &script,
        SCRIPT.replace(original, &format!("JCAGENT_CONF={}", conf.display())),
    )
    .unwrap();

    // Another system's trigger: nothing happens here.
    let env = |target: &str, name: &str, mode: &str| {
        vec![
            ("targetSystemId", target.to_owned()),
            ("userName", name.to_owned()),
            ("endMode", mode.to_owned()),
        ]
    };
    let call = |vars: Vec<(&str, String)>| {
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_script(&script, &vars)
    };
    let (code, out) = call(env("5f00000000000000000fffff", &user, "terminate"));
    assert_eq!(code, 0, "{out}");
    assert!(
        ts_file.exists() && sleeps.iter().all(|p| alive(*p)),
        "acted for another system"
    );

    // Names that are not plain account names are refused before any use.
    for bad in ["root", "nobody", "Ada", "ada\nroot", "-x", "a b", ""] {
        let (code, out) = call(env(SYSTEM_KEY, bad, "terminate"));
        assert_ne!(code, 0, "{bad:?} was accepted: {out}");
    }
    assert!(sleeps.iter().all(|p| alive(*p)));

    // notify: the cached credential goes, the running work stays.
    let (code, out) = call(env(SYSTEM_KEY, &user, "notify"));
    assert_eq!(code, 0, "{out}");
    assert!(
        !ts_file.exists(),
        "the sudo timestamp is still there: {out}"
    );
    assert!(
        sleeps.iter().all(|p| alive(*p)),
        "notify ended processes: {out}"
    );

    // terminate: the sudo tree ends; the others do not.
    let (code, out) = call(env(SYSTEM_KEY, &user, "terminate"));
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeps.iter().any(|p| alive(*p)) {
        assert!(Instant::now() < deadline, "the sudo sleep survived: {out}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(alive(others_pid), "another user's process was ended");
    assert!(alive(own_pid), "the test's own process was ended");
    println!("{out}");
}
