//! The kernel interfaces the launcher needs that have no safe wrapper: the
//! only `unsafe` code in kkrun.
//!
//! # Safety argument
//!
//! Every function here runs in the launcher, a process of its own that has
//! exactly one thread when it calls them (the launcher starts no threads,
//! and `main` calls it before anything else):
//!
//! - `unshare` is unsafe in rustix because unsharing the file table
//!   (`CLONE_FILES`) would let threads see different descriptors. Only
//!   `CLONE_NEWNS`, `CLONE_NEWNET` and `CLONE_NEWUSER` are ever passed, and
//!   there are no other threads.
//! - Bringing the loopback interface up uses a socket this function opens
//!   and closes itself, and an `ifreq` it owns, zero-initialised (a valid
//!   value for that plain C struct) with a NUL-terminated name that fits.
//! - Dying by a signal resets that one signal's disposition to the default
//!   and raises it; no handler runs and no Rust state is touched after.

use rustix::thread::UnshareFlags;

/// Which namespaces to enter.
#[derive(Debug, Clone, Copy)]
pub(super) struct Namespaces {
    /// A user namespace (needed to make the others without privilege).
    pub(super) user: bool,
    /// A mount namespace, for read-only bind mounts.
    pub(super) mount: bool,
    /// A network namespace with nothing but loopback.
    pub(super) network: bool,
}

/// Moves the (single-threaded) launcher into new namespaces.
pub(super) fn unshare(namespaces: Namespaces) -> std::io::Result<()> {
    let mut flags = UnshareFlags::empty();
    if namespaces.user {
        flags |= UnshareFlags::NEWUSER;
    }
    if namespaces.mount {
        flags |= UnshareFlags::NEWNS;
    }
    if namespaces.network {
        flags |= UnshareFlags::NEWNET;
    }
    // SAFETY: see the module's safety argument: no CLONE_FILES, one thread.
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(std::io::Error::from)
}

/// Brings `lo` up in a fresh network namespace, so that servers a test
/// suite starts on 127.0.0.1 still work while the outside stays cut off.
pub(super) fn loopback_up() -> std::io::Result<()> {
    // SAFETY: see the module's safety argument: our own socket and ifreq.
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
            *slot = *byte as libc::c_char;
        }
        let mut result = libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request);
        if result == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            result = libc::ioctl(socket, libc::SIOCSIFFLAGS, &request);
        }
        let error = std::io::Error::last_os_error();
        libc::close(socket);
        if result == 0 { Ok(()) } else { Err(error) }
    }
}

/// Ends the launcher the way its command ended: killed by `signal`.
pub(super) fn die_by_signal(signal: i32) -> ! {
    // SAFETY: see the module's safety argument: default disposition, raise.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
        libc::raise(signal);
    }
    std::process::exit(128 + signal)
}
