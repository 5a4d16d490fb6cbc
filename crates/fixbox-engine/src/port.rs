//! Picking the port an engine listens on: the preferred one if free, else the next free one, naming the
//! process that holds the preferred one (on Linux, from /proc) so the user knows what is in the way.

use std::net::{IpAddr, SocketAddr, TcpListener};

/// Who holds a port, as far as this user can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortHolder {
    pub pid: u32,
    pub name: String,
}

/// The port to use, and what was in the way of the preferred one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortChoice {
    pub port: u16,
    /// Set when the preferred port was taken.
    pub taken: Option<Taken>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub port: u16,
    pub holder: Option<PortHolder>,
}

impl std::fmt::Display for Taken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.holder {
            Some(holder) => write!(f, "port {} is taken by pid {} ({})", self.port, holder.pid, holder.name),
            None => write!(f, "port {} is taken by another process", self.port),
        }
    }
}

/// How many ports after the preferred one are tried.
const SEARCH: u16 = 100;

/// The first free port at `host` from `preferred` on; `None` if the next hundred are all taken.
pub fn choose_port(host: IpAddr, preferred: u16) -> Option<PortChoice> {
    if is_free(host, preferred) {
        return Some(PortChoice { port: preferred, taken: None });
    }
    let taken = Taken { port: preferred, holder: holder_of(preferred) };
    (1..=SEARCH)
        .filter_map(|step| preferred.checked_add(step))
        .find(|&port| is_free(host, port))
        .map(|port| PortChoice { port, taken: Some(taken) })
}

/// Whether a listener can bind `host:port` now. (Another process may still take it before the engine
/// does; the supervisor reports that as a failed start.)
pub fn is_free(host: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(host, port)).is_ok()
}

/// The process listening on `port`, found through the socket's inode in /proc/net/tcp{,6} and the
/// process whose fd points at it. `None` where that cannot be seen (another user's process, not Linux).
pub fn holder_of(port: u16) -> Option<PortHolder> {
    #[cfg(target_os = "linux")]
    {
        linux::holder_of(port)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = port;
        None
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use super::PortHolder;

    /// `st` of a listening socket in /proc/net/tcp.
    const TCP_LISTEN: &str = "0A";

    pub fn holder_of(port: u16) -> Option<PortHolder> {
        let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
            .iter()
            .filter_map(|table| std::fs::read_to_string(table).ok())
            .flat_map(|table| listening_inodes(&table, port))
            .collect();
        if inodes.is_empty() {
            return None;
        }
        let wanted: Vec<String> = inodes.iter().map(|inode| format!("socket:[{inode}]")).collect();
        for process in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = process.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(fds) = std::fs::read_dir(process.path().join("fd")) else { continue };
            let holds = fds.flatten().any(|fd| {
                std::fs::read_link(fd.path())
                    .is_ok_and(|target| wanted.iter().any(|w| target.as_os_str() == w.as_str()))
            });
            if holds {
                let name = std::fs::read_to_string(process.path().join("comm")).unwrap_or_default().trim().to_string();
                return Some(PortHolder { pid, name });
            }
        }
        None
    }

    /// Inodes of sockets listening on `port` in one /proc/net/tcp table.
    pub(super) fn listening_inodes(table: &str, port: u16) -> Vec<String> {
        let port_hex = format!("{port:04X}");
        table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let local = fields.get(1)?;
                let state = fields.get(3)?;
                let inode = fields.get(9)?;
                let local_port = local.rsplit(':').next()?;
                (local_port == port_hex && *state == TCP_LISTEN).then(|| inode.to_string())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_its_holder_and_the_next_free_one_used() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let choice = choose_port(IpAddr::from([127, 0, 0, 1]), port).unwrap();
        assert_ne!(choice.port, port);
        assert!(choice.port > port);
        let taken = choice.taken.unwrap();
        let holder = taken.holder.clone().unwrap();
        assert_eq!(holder.pid, std::process::id());
        let me = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(taken.to_string(), format!("port {port} is taken by pid {} ({})", std::process::id(), me.trim()));
        drop(listener);
        assert_eq!(choose_port(IpAddr::from([127, 0, 0, 1]), port).unwrap(), PortChoice { port, taken: None });
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_listening_sockets_from_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1";
        assert_eq!(linux::listening_inodes(table, 8080), ["4242"]);
        assert!(linux::listening_inodes(table, 8081).is_empty());
    }
}
