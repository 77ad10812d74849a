//! Starts a real pjsua the way the engine does (48 kHz bridge, 20 ms frames, null sound device)
//! and checks that the build offers the codecs we promise: a build without libopus-dev, or with
//! G.711/G.722 left out, fails here. pjsua is process-global, hence a test binary of its own.

use std::ffi::CStr;
use std::mem::MaybeUninit;

use pjsip_sys::*;

fn check(status: pj_status_t, what: &str) {
    assert_eq!(
        status, PJ_SUCCESS as pj_status_t,
        "{what} failed with status {status}"
    );
}

fn pj_str_to_string(s: &pj_str_t) -> String {
    // SAFETY: a pj_str_t from pjsua points at `slen` valid bytes (not NUL-terminated).
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr as *const u8, s.slen as usize) };
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn pjsua_starts_with_a_48k_null_bridge_and_offers_our_codecs() {
    // SAFETY: this test is the only user of pjsua in its process and runs everything on one
    // thread, which pjsua_create() registers with pjlib. Config structs are initialised by
    // their *_default() functions before use.
    let codecs = unsafe {
        check(pjsua_create(), "pjsua_create");

        let mut cfg = MaybeUninit::<pjsua_config>::uninit();
        pjsua_config_default(cfg.as_mut_ptr());
        let mut cfg = cfg.assume_init();
        cfg.thread_cnt = 0;

        let mut log = MaybeUninit::<pjsua_logging_config>::uninit();
        pjsua_logging_config_default(log.as_mut_ptr());
        let mut log = log.assume_init();
        log.console_level = 1;
        log.level = 1;

        let mut med = MaybeUninit::<pjsua_media_config>::uninit();
        pjsua_media_config_default(med.as_mut_ptr());
        let mut med = med.assume_init();
        med.clock_rate = 48000;
        med.snd_clock_rate = 0;
        med.channel_count = 1;
        med.audio_frame_ptime = 20;
        med.no_vad = 1;
        med.ec_tail_len = 0;
        med.snd_auto_close_time = -1;

        check(pjsua_init(&cfg, &log, &med), "pjsua_init");
        check(pjsua_set_null_snd_dev(), "pjsua_set_null_snd_dev");
        check(pjsua_start(), "pjsua_start");

        let mut infos: [pjsua_codec_info; 32] = std::array::from_fn(|_| Default::default());
        let mut count = infos.len() as u32;
        check(
            pjsua_enum_codecs(infos.as_mut_ptr(), &mut count),
            "pjsua_enum_codecs",
        );
        let codecs: Vec<String> = infos[..count as usize]
            .iter()
            .map(|c| pj_str_to_string(&c.codec_id))
            .collect();

        let version = CStr::from_ptr(voiceagent_pj_version())
            .to_string_lossy()
            .into_owned();
        println!("PJSIP {version}: codecs {codecs:?}");

        check(pjsua_destroy(), "pjsua_destroy");
        codecs
    };

    for wanted in ["opus/48000", "G722/16000", "PCMA/8000", "PCMU/8000"] {
        assert!(
            codecs.iter().any(|c| c.starts_with(wanted)),
            "codec {wanted} missing from {codecs:?}"
        );
    }
}
