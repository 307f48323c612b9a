//! One Cap'n Proto session with a node's IPC socket: the handshake that yields a `Mining`
//! capability, then `getTip` calls on it (extractors.md §5).
//!
//! Cap'n Proto's RPC objects are single-threaded (`Rc` inside), so a [`Session`] lives on the
//! extractor's own thread inside a `LocalSet`; nothing here is `Send`.
//!
//! Invariants: every call runs on the one server thread the handshake asked for (the
//! `Context` carries it), and the connection's driver task is owned by the session, so
//! dropping the session closes the socket.

use std::path::Path;

use capnp_rpc::rpc_twoparty_capnp::Side;
use capnp_rpc::{twoparty, RpcSystem};
use futures::AsyncReadExt as _;
use tokio::task::JoinHandle;
use tokio_util::compat::TokioAsyncReadCompatExt as _;

use super::core_ipc_capnp::{context, init, mining, thread};

/// The tip as the node reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tip {
    /// Block height.
    pub height: i32,
    /// Block hash in internal byte order (as received; not reversed for display).
    pub hash: Vec<u8>,
}

/// A connected session: the `Mining` capability and the context every call carries.
pub struct Session {
    mining: mining::Client,
    thread: thread::Client,
    driver: JoinHandle<Result<(), capnp::Error>>,
}

impl Session {
    /// Connects to the socket at `path`; see [`Session::over`].
    pub async fn connect(path: &Path) -> Result<Session, String> {
        let stream = tokio::net::UnixStream::connect(path)
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", path.display()))?;
        Session::over(stream, path).await
    }

    /// Runs the handshake over a connected socket (`path` names it in errors): bootstrap
    /// `Init`, `construct` (which returns the server's `ThreadMap`), `makeThread`, then
    /// `makeMining` with a context naming that thread. Must run inside a `LocalSet`.
    pub async fn over(stream: tokio::net::UnixStream, path: &Path) -> Result<Session, String> {
        let (reader, writer) = stream.compat().split();
        let network = twoparty::VatNetwork::new(
            futures::io::BufReader::new(reader),
            futures::io::BufWriter::new(writer),
            Side::Client,
            capnp::message::ReaderOptions::default(),
        );
        let mut system = RpcSystem::new(Box::new(network), None);
        let init: init::Client = system.bootstrap(Side::Server);
        let driver = tokio::task::spawn_local(system);
        match handshake(&init).await {
            Ok((mining, thread)) => Ok(Session {
                mining,
                thread,
                driver,
            }),
            Err(e) => {
                driver.abort();
                Err(format!("IPC handshake with {} failed: {e}", path.display()))
            }
        }
    }

    /// `Mining.getTip`: `None` while the node has no tip yet.
    pub async fn tip(&self) -> Result<Option<Tip>, capnp::Error> {
        let mut request = self.mining.get_tip_request();
        fill_context(request.get().init_context(), &self.thread);
        let response = request.send().promise.await?;
        let results = response.get()?;
        if !results.get_has_result() {
            return Ok(None);
        }
        let block = results.get_result()?;
        Ok(Some(Tip {
            height: block.get_height(),
            hash: block.get_hash()?.to_vec(),
        }))
    }

    /// Whether the connection has ended (the node closed it or the socket failed).
    pub fn is_closed(&self) -> bool {
        self.driver.is_finished()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

async fn handshake(init: &init::Client) -> Result<(mining::Client, thread::Client), capnp::Error> {
    // We serve no callbacks, so we offer the server no ThreadMap of ours (a null capability).
    let constructed = init.construct_request().send().promise.await?;
    let thread_map = constructed.get()?.get_thread_map()?;

    let mut make_thread = thread_map.make_thread_request();
    make_thread.get().set_name("peerlab-ipc-extractor");
    let thread = make_thread.send().promise.await?.get()?.get_result()?;

    let mut make_mining = init.make_mining_request();
    fill_context(make_mining.get().init_context(), &thread);
    let mining = make_mining.send().promise.await?.get()?.get_result()?;
    Ok((mining, thread))
}

/// Both the thread the call runs on and the one callbacks would use are the server thread we
/// made (peer-observer's choice; `getTip` makes no callbacks).
fn fill_context(mut context: context::Builder<'_>, thread: &thread::Client) {
    context.set_thread(thread.clone());
    context.set_callback_thread(thread.clone());
}
