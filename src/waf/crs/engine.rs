//! libmodsecurity3 through its C API, loaded at run time (policy load builds an `Engine`; the
//! WAF stage runs one transaction per request, wholly inside one call). Loading with `dlopen`
//! keeps the binary free of the library: a policy without `waf.crs` never needs it, and one that
//! asks for it on a machine without it gets a configuration error, not a failed start.
//!
//! Threading: libmodsecurity shares a `ModSecurity` and a compiled `RulesSet` read-only between
//! transactions (its nginx and Apache connectors do the same across workers); a `Transaction` is
//! created, fed and freed within `Engine::run`, so it never meets a second thread or an await.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::Path;
use std::sync::Mutex;

use libloading::Library;

use super::CrsError;

type Msc = c_void;
type RulesSet = c_void;
type Tx = c_void;
type LogCb = unsafe extern "C" fn(*mut c_void, *const c_void);

/// The C functions Palisade calls (libmodsecurity 3.0's `modsecurity.h`, `rules_set.h`,
/// `transaction.h`).
#[derive(Clone, Copy)]
struct Api {
    init: unsafe extern "C" fn() -> *mut Msc,
    set_connector_info: unsafe extern "C" fn(*mut Msc, *const c_char),
    set_log_cb: unsafe extern "C" fn(*mut Msc, LogCb),
    who_am_i: unsafe extern "C" fn(*mut Msc) -> *const c_char,
    cleanup: unsafe extern "C" fn(*mut Msc),
    create_rules_set: unsafe extern "C" fn() -> *mut RulesSet,
    rules_add: unsafe extern "C" fn(*mut RulesSet, *const c_char, *mut *const c_char) -> c_int,
    rules_add_file: unsafe extern "C" fn(*mut RulesSet, *const c_char, *mut *const c_char) -> c_int,
    rules_cleanup: unsafe extern "C" fn(*mut RulesSet) -> c_int,
    new_transaction: unsafe extern "C" fn(*mut Msc, *mut RulesSet, *mut c_void) -> *mut Tx,
    process_connection: unsafe extern "C" fn(*mut Tx, *const c_char, c_int, *const c_char, c_int) -> c_int,
    process_uri: unsafe extern "C" fn(*mut Tx, *const c_char, *const c_char, *const c_char) -> c_int,
    add_n_request_header: unsafe extern "C" fn(*mut Tx, *const u8, usize, *const u8, usize) -> c_int,
    process_request_headers: unsafe extern "C" fn(*mut Tx) -> c_int,
    append_request_body: unsafe extern "C" fn(*mut Tx, *const u8, usize) -> c_int,
    process_request_body: unsafe extern "C" fn(*mut Tx) -> c_int,
    transaction_cleanup: unsafe extern "C" fn(*mut Tx),
}

/// Libraries opened so far, by the name asked for; never closed (an `Engine` may outlive any
/// one policy, and closing a library with live rule sets would leave dangling code).
static LIBRARIES: Mutex<Vec<(String, Api)>> = Mutex::new(Vec::new());

fn open(name: &str) -> Result<Api, CrsError> {
    let mut libs = LIBRARIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, api)) = libs.iter().find(|(n, _)| n == name) {
        return Ok(*api);
    }
    let missing = |e: libloading::Error| CrsError::Library {
        name: name.to_owned(),
        reason: e.to_string(),
    };
    // SAFETY: loading libmodsecurity runs its (and its dependencies') initialisers, which have
    // no preconditions on the caller.
    let lib: &'static Library = Box::leak(Box::new(unsafe { Library::new(name) }.map_err(missing)?));
    macro_rules! sym {
        ($s:literal) => {
            // SAFETY: the type is the one `modsecurity/*.h` of 3.0 declares for this symbol.
            *unsafe { lib.get(concat!($s, "\0").as_bytes()) }.map_err(missing)?
        };
    }
    let api = Api {
        init: sym!("msc_init"),
        set_connector_info: sym!("msc_set_connector_info"),
        set_log_cb: sym!("msc_set_log_cb"),
        who_am_i: sym!("msc_who_am_i"),
        cleanup: sym!("msc_cleanup"),
        create_rules_set: sym!("msc_create_rules_set"),
        rules_add: sym!("msc_rules_add"),
        rules_add_file: sym!("msc_rules_add_file"),
        rules_cleanup: sym!("msc_rules_cleanup"),
        new_transaction: sym!("msc_new_transaction"),
        process_connection: sym!("msc_process_connection"),
        process_uri: sym!("msc_process_uri"),
        add_n_request_header: sym!("msc_add_n_request_header"),
        process_request_headers: sym!("msc_process_request_headers"),
        append_request_body: sym!("msc_append_request_body"),
        process_request_body: sym!("msc_process_request_body"),
        transaction_cleanup: sym!("msc_transaction_cleanup"),
    };
    libs.push((name.to_owned(), api));
    Ok(api)
}

/// A loaded ModSecurity instance and its compiled rules.
pub struct Engine {
    api: Api,
    msc: *mut Msc,
    rules: *mut RulesSet,
    /// `msc_who_am_i`: the library's name and version.
    pub version: String,
}

// SAFETY: after loading, `msc` and `rules` are only read (libmodsecurity's design: one rule set
// shared by concurrent transactions); each transaction lives inside one `run` call.
unsafe impl Send for Engine {}
// SAFETY: as above.
unsafe impl Sync for Engine {}

impl Drop for Engine {
    fn drop(&mut self) {
        // SAFETY: both pointers came from this library and no transaction is running (a run
        // borrows the engine).
        unsafe {
            (self.api.rules_cleanup)(self.rules);
            (self.api.cleanup)(self.msc);
        }
    }
}

/// What one matched rule's log line said, kept until the transaction ends.
pub(super) type Lines = Vec<String>;

/// ModSecurity's log callback: `data` is the transaction's `Lines`, `msg` a C string (the
/// library's default text log property).
unsafe extern "C" fn on_log(data: *mut c_void, msg: *const c_void) {
    if data.is_null() || msg.is_null() {
        return;
    }
    // SAFETY: `data` is the `&mut Lines` `run` passed to `msc_new_transaction` and outlives the
    // transaction; `msg` is a NUL-terminated string valid for this call.
    let (lines, msg) = unsafe { (&mut *data.cast::<Lines>(), CStr::from_ptr(msg.cast::<c_char>())) };
    lines.push(msg.to_string_lossy().into_owned());
}

fn error_text(err: *const c_char) -> String {
    if err.is_null() {
        return "no reason given".to_owned();
    }
    // SAFETY: libmodsecurity returns a NUL-terminated message (leaked by the C API).
    unsafe { CStr::from_ptr(err) }.to_string_lossy().trim().to_owned()
}

fn c_string(s: &str, what: &str) -> Result<CString, CrsError> {
    CString::new(s).map_err(|_| CrsError::Rules(format!("{what} contains a NUL byte")))
}

impl Engine {
    /// Open `library` and start an instance with no rules.
    pub fn new(library: &str) -> Result<Engine, CrsError> {
        let api = open(library)?;
        // SAFETY: plain constructors of the C API.
        let (msc, rules) = unsafe { ((api.init)(), (api.create_rules_set)()) };
        if msc.is_null() || rules.is_null() {
            return Err(CrsError::Rules("libmodsecurity failed to initialise".to_owned()));
        }
        let connector = c_string(concat!("palisade ", env!("CARGO_PKG_VERSION")), "connector")?;
        // SAFETY: `msc` is live; the connector string is copied by the library.
        let version = unsafe {
            (api.set_connector_info)(msc, connector.as_ptr());
            (api.set_log_cb)(msc, on_log);
            let who = (api.who_am_i)(msc);
            if who.is_null() {
                String::new()
            } else {
                CStr::from_ptr(who).to_string_lossy().into_owned()
            }
        };
        Ok(Engine {
            api,
            msc,
            rules,
            version,
        })
    }

    /// Add directives; returns how many rules they held.
    pub fn add(&mut self, directives: &str) -> Result<usize, CrsError> {
        let text = c_string(directives, "directives")?;
        let mut err: *const c_char = std::ptr::null();
        // SAFETY: `rules` is live and not shared yet (`&mut self`).
        let n = unsafe { (self.api.rules_add)(self.rules, text.as_ptr(), &mut err) };
        usize::try_from(n).map_err(|_| CrsError::Rules(error_text(err)))
    }

    /// Add a rules file; returns how many rules it held.
    pub fn add_file(&mut self, path: &Path) -> Result<usize, CrsError> {
        let text = c_string(&path.to_string_lossy(), "path")?;
        let mut err: *const c_char = std::ptr::null();
        // SAFETY: as `add`.
        let n = unsafe { (self.api.rules_add_file)(self.rules, text.as_ptr(), &mut err) };
        usize::try_from(n).map_err(|_| CrsError::Rules(format!("{}: {}", path.display(), error_text(err))))
    }

    /// Run one request through the rules (phases 1 and 2) and return the log lines of the rules
    /// that matched.
    pub fn run(&self, req: &super::CrsRequest<'_>) -> Lines {
        let mut lines: Lines = Vec::new();
        let client = CString::new(req.client_ip.to_string()).unwrap_or_default();
        let server = c"127.0.0.1";
        let uri = CString::new(req.uri.replace('\0', "%00")).unwrap_or_default();
        let method = CString::new(req.method.replace('\0', "")).unwrap_or_default();
        let api = &self.api;
        // SAFETY: the transaction is created, used and freed here; every pointer handed over
        // (strings, header bytes, body, `lines`) outlives it.
        unsafe {
            let tx = (api.new_transaction)(self.msc, self.rules, (&mut lines as *mut Lines).cast::<c_void>());
            if tx.is_null() {
                return lines;
            }
            (api.process_connection)(tx, client.as_ptr(), 0, server.as_ptr(), 0);
            (api.process_uri)(tx, uri.as_ptr(), method.as_ptr(), c"1.1".as_ptr());
            for (name, value) in req.headers {
                let n = name.as_str().as_bytes();
                let v = value.as_bytes();
                (api.add_n_request_header)(tx, n.as_ptr(), n.len(), v.as_ptr(), v.len());
            }
            (api.process_request_headers)(tx);
            if let Some(body) = req.body.filter(|b| !b.is_empty()) {
                (api.append_request_body)(tx, body.as_ptr(), body.len());
            }
            // Always: most CRS attack rules run in phase 2, whether or not there is a body.
            (api.process_request_body)(tx);
            (api.transaction_cleanup)(tx);
        }
        lines
    }
}
