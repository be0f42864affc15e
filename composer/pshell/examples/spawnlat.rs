use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Instant;
fn main() {
    for mode in ["plain", "pgroup", "preexec"] {
        let t = Instant::now();
        let mut kids = Vec::new();
        for _ in 0..32 {
            let mut c = Command::new("/bin/true");
            c.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
            if mode != "plain" { c.process_group(0); }
            if mode == "preexec" { unsafe { c.pre_exec(|| Ok(())); } }
            kids.push(c.spawn().unwrap());
        }
        let spawned = t.elapsed();
        for mut k in kids { k.wait().unwrap(); }
        println!("{mode}: 32 spawns {:?}", spawned);
    }
}
