//! The thin pjsua layer: every pjsua and pjmedia call the engine makes from its pjlib thread,
//! each behind a safe method that returns a [`Result`] through the one [`check`].
//!
//! Why a layer and not `unsafe` blocks where they are needed: pjsua's rules (one registered
//! thread, strings that must outlive the call, out-parameters that must be writable, statuses
//! that must not be ignored) are the same for every call, so they are stated once here and the
//! rooms above (`setup`, `calls`, `conference`, the loop) are safe Rust that read as policy.
//!
//! The one-thread rule is in the types: every method takes a [`Pjsua`], a zero-sized token that
//! is `!Send` and only made on the thread that created pjsua ([`Pjsua::create`]) or inside a
//! pjsua callback that runs there ([`Pjsua::assume_pjlib_thread`]). Holding one is the proof that
//! the caller is on the pjlib thread.
//!
//! Left outside on purpose: the media port's own pjmedia calls (`port.rs`, which owns the port's
//! memory), the edge filter's reads of received messages (`edge.rs`), and the callbacks' reads
//! of the pointers pjsua hands them (`callbacks.rs`): each belongs to the code that owns the
//! memory it touches.

use std::ffi::{c_char, CStr};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;

use pjsip_sys as sys;

use crate::error::{check, check_bind, Error, Result};
use crate::event::MediaInfo;
use crate::pjstr;

/// Proof of being on the pjlib thread (the one that created pjsua). `Copy`, but not `Send` or
/// `Sync`: it cannot leave that thread.
#[derive(Clone, Copy)]
pub(crate) struct Pjsua {
    _pjlib_thread_only: PhantomData<*mut ()>,
}

/// A pjsua memory pool, released on drop unless handed over with [`Pool::into_raw`].
pub(crate) struct Pool(*mut sys::pj_pool_t);

impl Pool {
    pub(crate) fn as_ptr(&self) -> *mut sys::pj_pool_t {
        self.0
    }

    /// Gives up ownership (e.g. to a media port, which releases it in `on_destroy`).
    pub(crate) fn into_raw(self) -> *mut sys::pj_pool_t {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: the pool came from pjsua_pool_create and is released once, here; whoever
        // borrowed it (pjsua_acc_get_config) is done with it by the time the owner drops it.
        unsafe { sys::pj_pool_release(self.0) };
    }
}

/// Routes pjlib's log output before pjsua exists. Only stores values in pjlib's logging
/// globals, so it needs no registered thread.
pub(crate) fn set_log_func(
    func: unsafe extern "C" fn(std::os::raw::c_int, *const c_char, std::os::raw::c_int),
    level: i32,
) {
    // SAFETY: both only store a value in pjlib's logging globals (no pjlib state needed yet);
    // `func` is a plain function that lives for the process.
    unsafe {
        sys::pj_log_set_log_func(Some(func));
        sys::pj_log_set_level(level);
    }
}

/// Version of the PJSIP tree we are linked with.
pub(crate) fn pjsip_version() -> String {
    // SAFETY: returns a pointer to a static NUL-terminated string.
    unsafe { CStr::from_ptr(sys::voiceagent_pj_version()) }
        .to_string_lossy()
        .into_owned()
}

/// `pjsua_*_config_default` and friends: fill a plain-data struct completely.
fn filled<T>(fill: unsafe extern "C" fn(*mut T)) -> T {
    let mut c = MaybeUninit::<T>::uninit();
    // SAFETY: the pjsua `*_default` functions initialise every field of the struct, which is
    // plain data (integers, pointers, nested plain structs).
    unsafe {
        fill(c.as_mut_ptr());
        c.assume_init()
    }
}

impl Pjsua {
    /// Creates pjsua and registers this thread with pjlib: the token lives on this thread.
    pub(crate) fn create() -> Result<Self> {
        // SAFETY: pjsua_create registers the calling thread with pjlib; the token it yields is
        // !Send, so every later call made through it comes from this thread.
        check(unsafe { sys::pjsua_create() }, "pjsua_create")?;
        Ok(Self {
            _pjlib_thread_only: PhantomData,
        })
    }

    /// A token inside a pjsua callback.
    ///
    /// # Safety
    /// The caller must be on the pjlib thread while pjsua exists: true for pjsua's SIP
    /// callbacks, which run inside `pjsua_handle_events` or pjsua calls made there
    /// (`thread_cnt = 0`); not for the media thread's callbacks.
    pub(crate) unsafe fn assume_pjlib_thread() -> Self {
        Self {
            _pjlib_thread_only: PhantomData,
        }
    }

    /// Destroys pjsua (unregisters remaining accounts, bounded by `unreg_timeout`, and shuts
    /// pjlib down). Nothing may refer to pjsua state afterwards.
    pub(crate) fn destroy(self) -> Result<()> {
        // SAFETY: on the pjlib thread that created pjsua (the token says so); the caller has
        // destroyed its ports and dropped its call records.
        check(unsafe { sys::pjsua_destroy() }, "pjsua_destroy")
    }

    pub(crate) fn default_config(self) -> sys::pjsua_config {
        filled(sys::pjsua_config_default)
    }

    pub(crate) fn default_logging_config(self) -> sys::pjsua_logging_config {
        filled(sys::pjsua_logging_config_default)
    }

    pub(crate) fn default_media_config(self) -> sys::pjsua_media_config {
        filled(sys::pjsua_media_config_default)
    }

    /// `pjsua_init`. The configs' strings need only live until it returns (pjsua copies them).
    pub(crate) fn init(
        self,
        ua: &sys::pjsua_config,
        log: &sys::pjsua_logging_config,
        media: &sys::pjsua_media_config,
    ) -> Result<()> {
        // SAFETY: on the pjlib thread after pjsua_create; the configs are fully initialised and
        // pjsua copies what it keeps.
        check(unsafe { sys::pjsua_init(ua, log, media) }, "pjsua_init")
    }

    /// The conference bridge's clock without a sound device.
    pub(crate) fn set_null_snd_dev(self) -> Result<()> {
        // SAFETY: on the pjlib thread after pjsua_init.
        check(
            unsafe { sys::pjsua_set_null_snd_dev() },
            "pjsua_set_null_snd_dev",
        )
    }

    pub(crate) fn start(self) -> Result<()> {
        // SAFETY: on the pjlib thread after init and transport creation.
        check(unsafe { sys::pjsua_start() }, "pjsua_start")
    }

    /// Polls SIP sockets and timers for up to `ms`, running callbacks; returns the number of
    /// events handled (a negative PJSIP count is reported as 0).
    pub(crate) fn handle_events(self, ms: u32) -> u32 {
        // SAFETY: on the pjlib thread; the timeout is a plain value.
        let n = unsafe { sys::pjsua_handle_events(ms) };
        u32::try_from(n).unwrap_or(0)
    }

    /// The SIP endpoint, for registering our own modules (the edge filter).
    pub(crate) fn pjsip_endpt(self) -> *mut sys::pjsip_endpoint {
        // SAFETY: on the pjlib thread after pjsua_init; a plain getter.
        unsafe { sys::pjsua_get_pjsip_endpt() }
    }

    pub(crate) fn pool_create(self, name: &'static CStr) -> Result<Pool> {
        // SAFETY: on the pjlib thread after pjsua_init; the name is static (pools keep it).
        let pool = unsafe { sys::pjsua_pool_create(name.as_ptr(), 1024, 1024) };
        if pool.is_null() {
            return Err(Error::Internal("pjsua_pool_create returned null".into()));
        }
        Ok(Pool(pool))
    }

    // ---- codecs ----

    /// Sets a codec's priority; `""` matches every codec.
    pub(crate) fn codec_set_priority(self, id: &CStr, priority: u8) -> Result<()> {
        // SAFETY: on the pjlib thread after init; the id is only read during the call.
        check(
            unsafe { sys::pjsua_codec_set_priority(&pjstr::borrow(id), priority) },
            "pjsua_codec_set_priority",
        )
    }

    /// A codec's default parameters; an error when the build has no such codec.
    pub(crate) fn codec_get_param(self, id: &CStr) -> Result<sys::pjmedia_codec_param> {
        let mut param = sys::pjmedia_codec_param::default();
        // SAFETY: on the pjlib thread after init; `param` is writable, the id read-only.
        check(
            unsafe { sys::pjsua_codec_get_param(&pjstr::borrow(id), &mut param) },
            "pjsua_codec_get_param",
        )?;
        Ok(param)
    }

    pub(crate) fn opus_get_config(self) -> Result<sys::pjmedia_codec_opus_config> {
        let mut opus = sys::pjmedia_codec_opus_config::default();
        // SAFETY: on the pjlib thread after init; `opus` is writable.
        check(
            unsafe { sys::pjmedia_codec_opus_get_config(&mut opus) },
            "pjmedia_codec_opus_get_config",
        )?;
        Ok(opus)
    }

    pub(crate) fn opus_set_default_param(
        self,
        opus: &sys::pjmedia_codec_opus_config,
        param: &mut sys::pjmedia_codec_param,
    ) -> Result<()> {
        // SAFETY: on the pjlib thread after init; both structs are initialised.
        check(
            unsafe { sys::pjmedia_codec_opus_set_default_param(opus, param) },
            "pjmedia_codec_opus_set_default_param",
        )
    }

    /// The codecs in PJSIP's codec manager (up to 64).
    pub(crate) fn enum_codecs(self) -> Result<Vec<sys::pjsua_codec_info>> {
        let mut infos: Vec<sys::pjsua_codec_info> = (0..64).map(|_| Default::default()).collect();
        let mut count = infos.len() as u32;
        // SAFETY: on the pjlib thread; `infos` has room for `count` entries.
        check(
            unsafe { sys::pjsua_enum_codecs(infos.as_mut_ptr(), &mut count) },
            "pjsua_enum_codecs",
        )?;
        infos.truncate(count as usize);
        Ok(infos)
    }

    // ---- transports and accounts ----

    pub(crate) fn transport_config_default(self) -> sys::pjsua_transport_config {
        let mut t = sys::pjsua_transport_config::default();
        // SAFETY: fills the writable struct.
        unsafe { sys::pjsua_transport_config_default(&mut t) };
        t
    }

    /// Creates a SIP transport; a busy port becomes [`Error::AddressInUse`] naming `name`.
    pub(crate) fn transport_create(
        self,
        kind: sys::pjsip_transport_type_e,
        cfg: &sys::pjsua_transport_config,
        name: &'static str,
        port: u16,
    ) -> Result<sys::pjsua_transport_id> {
        let mut id = 0;
        // SAFETY: on the pjlib thread; `cfg` and its strings are valid for the call (copied).
        let status = unsafe { sys::pjsua_transport_create(kind, cfg, &mut id) };
        check_bind(status, "pjsua_transport_create", name, port)?;
        Ok(id)
    }

    pub(crate) fn transport_get_info(
        self,
        id: sys::pjsua_transport_id,
    ) -> Result<sys::pjsua_transport_info> {
        let mut info = sys::pjsua_transport_info::default();
        // SAFETY: on the pjlib thread; `info` is writable; an unknown id is an error status.
        check(
            unsafe { sys::pjsua_transport_get_info(id, &mut info) },
            "pjsua_transport_get_info",
        )?;
        Ok(info)
    }

    /// The local (IP mode) account on `transport`, made the default account.
    pub(crate) fn acc_add_local(
        self,
        transport: sys::pjsua_transport_id,
    ) -> Result<sys::pjsua_acc_id> {
        let mut acc_id = 0;
        // SAFETY: on the pjlib thread; the transport exists.
        check(
            unsafe { sys::pjsua_acc_add_local(transport, sys::pj_bool_t::from(true), &mut acc_id) },
            "pjsua_acc_add_local",
        )?;
        Ok(acc_id)
    }

    /// An account's config; its strings live in `pool`.
    ///
    /// Boxed, and filled where it stays: the config holds pj_list heads (`reg_hdr_list`,
    /// `sub_hdr_list`) whose links point at themselves, so moving the struct after pjsua filled
    /// it leaves dangling links (pjsua_acc_modify then follows them and crashes).
    pub(crate) fn acc_get_config(
        self,
        acc: sys::pjsua_acc_id,
        pool: &Pool,
    ) -> Result<Box<sys::pjsua_acc_config>> {
        let mut cfg = Box::<sys::pjsua_acc_config>::default();
        // SAFETY: on the pjlib thread; `cfg` is writable and does not move afterwards (boxed);
        // pjsua copies the strings into `pool`, which the caller holds while it uses the config.
        check(
            unsafe { sys::pjsua_acc_get_config(acc, pool.as_ptr(), &mut *cfg) },
            "pjsua_acc_get_config",
        )?;
        Ok(cfg)
    }

    pub(crate) fn acc_modify(
        self,
        acc: sys::pjsua_acc_id,
        cfg: &sys::pjsua_acc_config,
    ) -> Result<()> {
        // SAFETY: on the pjlib thread; `cfg` is fully initialised; pjsua duplicates what it keeps.
        check(
            unsafe { sys::pjsua_acc_modify(acc, cfg) },
            "pjsua_acc_modify",
        )
    }

    /// Account defaults; after `pjsua_init`, so the UA config's timer/100rel defaults apply.
    /// Boxed for the reason given at [`Self::acc_get_config`] (self-referential list heads).
    pub(crate) fn acc_config_default(self) -> Box<sys::pjsua_acc_config> {
        let mut acc = Box::<sys::pjsua_acc_config>::default();
        // SAFETY: on the pjlib thread after init; fills the writable struct where it stays.
        unsafe { sys::pjsua_acc_config_default(&mut *acc) };
        acc
    }

    /// Adds an account as the default one.
    pub(crate) fn acc_add(self, cfg: &sys::pjsua_acc_config) -> Result<sys::pjsua_acc_id> {
        let mut acc_id = 0;
        // SAFETY: on the pjlib thread; `cfg` and all strings it points to are valid for the call;
        // pjsua duplicates them.
        check(
            unsafe { sys::pjsua_acc_add(cfg, sys::pj_bool_t::from(true), &mut acc_id) },
            "pjsua_acc_add",
        )?;
        Ok(acc_id)
    }

    /// Registers (`true`) or unregisters (`false`) an account.
    pub(crate) fn acc_set_registration(self, acc: sys::pjsua_acc_id, renew: bool) -> Result<()> {
        // SAFETY: on the pjlib thread; an unknown account is an error status.
        check(
            unsafe { sys::pjsua_acc_set_registration(acc, sys::pj_bool_t::from(renew)) },
            "pjsua_acc_set_registration",
        )
    }

    // ---- calls ----

    /// Call settings with exactly one audio stream and nothing else (no video, and no text
    /// stream on 2.16+: the shim sets the counts that exist in the linked version).
    pub(crate) fn call_setting_audio_only(self) -> sys::pjsua_call_setting {
        let mut opt = sys::pjsua_call_setting::default();
        // SAFETY: fills the writable struct.
        unsafe { sys::pjsua_call_setting_default(&mut opt) };
        // SAFETY: `opt` is initialised; the shim only sets count fields.
        unsafe { sys::voiceagent_call_setting_audio_only(&mut opt) };
        opt
    }

    /// Answers an incoming call with `code` (180 ringing, 200 OK).
    pub(crate) fn call_answer(
        self,
        call: sys::pjsua_call_id,
        opt: &sys::pjsua_call_setting,
        code: u16,
    ) -> Result<()> {
        // SAFETY: on the pjlib thread; an unknown or finished call is an error status.
        check(
            unsafe { sys::pjsua_call_answer2(call, opt, code.into(), ptr::null(), ptr::null()) },
            "pjsua_call_answer2",
        )
    }

    /// Ends a call; `code` is the final response of an unanswered incoming call (0: pjsua
    /// picks). pjsua calls `on_call_state` before this returns.
    pub(crate) fn call_hangup(self, call: sys::pjsua_call_id, code: u16) -> Result<()> {
        // SAFETY: on the pjlib thread; hanging up an id that is already gone is an error status.
        check(
            unsafe { sys::pjsua_call_hangup(call, code.into(), ptr::null(), ptr::null()) },
            "pjsua_call_hangup",
        )
    }

    pub(crate) fn call_hangup_all(self) {
        // SAFETY: on the pjlib thread.
        unsafe { sys::pjsua_call_hangup_all() };
    }

    /// Blind transfer (REFER) to `target`.
    pub(crate) fn call_xfer(self, call: sys::pjsua_call_id, target: &CStr) -> Result<()> {
        // SAFETY: on the pjlib thread; the target is valid during the call (copied).
        check(
            unsafe { sys::pjsua_call_xfer(call, &pjstr::borrow(target), ptr::null()) },
            "pjsua_call_xfer",
        )
    }

    pub(crate) fn verify_sip_url(self, uri: &CStr) -> Result<()> {
        // SAFETY: a NUL-terminated string, only read.
        check(
            unsafe { sys::pjsua_verify_sip_url(uri.as_ptr()) },
            "pjsua_verify_sip_url",
        )
    }

    pub(crate) fn call_make_call(
        self,
        acc: sys::pjsua_acc_id,
        uri: &CStr,
        opt: &sys::pjsua_call_setting,
    ) -> Result<sys::pjsua_call_id> {
        let mut call = sys::PJSUA_INVALID_ID;
        // SAFETY: on the pjlib thread; the URI is copied by pjsua; `call` is writable.
        check(
            unsafe {
                sys::pjsua_call_make_call(
                    acc,
                    &pjstr::borrow(uri),
                    opt,
                    ptr::null_mut(),
                    ptr::null(),
                    &mut call,
                )
            },
            "pjsua_call_make_call",
        )?;
        Ok(call)
    }

    /// A call's info (boxed: the struct is several kilobytes).
    pub(crate) fn call_get_info(
        self,
        call: sys::pjsua_call_id,
    ) -> Result<Box<sys::pjsua_call_info>> {
        let mut info = Box::<sys::pjsua_call_info>::default();
        // SAFETY: on the pjlib thread; `info` is writable; an unknown call is an error status.
        check(
            unsafe { sys::pjsua_call_get_info(call, &mut *info) },
            "pjsua_call_get_info",
        )?;
        Ok(info)
    }

    /// What a call's audio stream `media` negotiated: codec, clock rate, channels, remote RTP
    /// address. An error for a stream that is not (or no longer) audio.
    pub(crate) fn call_audio_stream_info(
        self,
        call: sys::pjsua_call_id,
        media: u32,
    ) -> Result<MediaInfo> {
        let mut si = Box::<sys::pjsua_stream_info>::default();
        // SAFETY: on the pjlib thread; `si` is writable.
        check(
            unsafe { sys::pjsua_call_get_stream_info(call, media, &mut *si) },
            "pjsua_call_get_stream_info",
        )?;
        if si.type_ != sys::PJMEDIA_TYPE_AUDIO {
            return Err(Error::Internal(format!(
                "stream {media} of pjsua call {call} is not audio"
            )));
        }
        // SAFETY: type_ is AUDIO, so the `aud` member of the union is the valid one.
        let aud = unsafe { &si.info.aud };
        Ok(MediaInfo {
            codec: pjstr::to_string(&aud.fmt.encoding_name),
            clock_rate: aud.fmt.clock_rate,
            channels: aud.fmt.channel_cnt,
            remote_rtp: sockaddr_string(&aud.rem_addr),
        })
    }

    pub(crate) fn call_get_stream_stat(
        self,
        call: sys::pjsua_call_id,
        media: u32,
    ) -> Result<Box<sys::pjsua_stream_stat>> {
        let mut stat = Box::<sys::pjsua_stream_stat>::default();
        // SAFETY: on the pjlib thread; `stat` is writable.
        check(
            unsafe { sys::pjsua_call_get_stream_stat(call, media, &mut *stat) },
            "pjsua_call_get_stream_stat",
        )?;
        Ok(stat)
    }

    // ---- conference bridge ----

    /// Adds a media port to the bridge; returns its slot. The port and the pool must live until
    /// the port's `on_destroy`.
    pub(crate) fn conf_add_port(
        self,
        pool: *mut sys::pj_pool_t,
        port: *mut sys::pjmedia_port,
    ) -> Result<sys::pjsua_conf_port_id> {
        let mut slot = sys::PJSUA_INVALID_ID;
        // SAFETY: on the pjlib thread; the caller hands over a live port and pool (see above).
        check(
            unsafe { sys::pjsua_conf_add_port(pool, port, &mut slot) },
            "pjsua_conf_add_port",
        )?;
        Ok(slot)
    }

    /// Connects `source`'s output to `sink`'s input.
    pub(crate) fn conf_connect(
        self,
        source: sys::pjsua_conf_port_id,
        sink: sys::pjsua_conf_port_id,
    ) -> Result<()> {
        // SAFETY: on the pjlib thread; a stale slot is an error status.
        check(
            unsafe { sys::pjsua_conf_connect(source, sink) },
            "pjsua_conf_connect",
        )
    }

    pub(crate) fn conf_remove_port(self, slot: sys::pjsua_conf_port_id) -> Result<()> {
        // SAFETY: on the pjlib thread; a stale slot is an error status.
        check(
            unsafe { sys::pjsua_conf_remove_port(slot) },
            "pjsua_conf_remove_port",
        )
    }
}

/// `host:port` of a socket address PJSIP filled in.
fn sockaddr_string(addr: &sys::pj_sockaddr) -> String {
    let mut buf = [0 as c_char; 64];
    // SAFETY: `addr` is a valid sockaddr; pj_sockaddr_print writes at most buf.len() bytes
    // including the NUL (flags 3: with port, IPv6 in brackets). Pure formatting, any thread.
    unsafe {
        sys::pj_sockaddr_print(
            addr as *const sys::pj_sockaddr as *const _,
            buf.as_mut_ptr(),
            buf.len() as i32,
            3,
        )
    };
    pjstr::from_c_array(&buf)
}
