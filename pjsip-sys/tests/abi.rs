//! The Rust view of every struct we touch must match the C compiler's, byte for byte: a mismatch
//! (bindings generated with another config_site.h or other defines than the library was built
//! with) is silent memory corruption. The C side is `shim/shim.c`, compiled by gcc with the
//! flags of the PJSIP build.

use std::ffi::CString;
use std::mem::{align_of, size_of};

use pjsip_sys::*;

fn c_layout(name: &str) -> (usize, usize) {
    let c_name = CString::new(name).unwrap();
    // SAFETY: the shim only reads the NUL-terminated name and returns plain integers.
    let (size, align) = unsafe {
        (
            voiceagent_sizeof(c_name.as_ptr()),
            voiceagent_alignof(c_name.as_ptr()),
        )
    };
    assert_ne!(size, 0, "shim/shim.c does not know the type {name}");
    (size, align)
}

macro_rules! check_layouts {
    ($($ty:ident),* $(,)?) => {{
        let mut mismatches = Vec::new();
        $(
            let rust = (size_of::<$ty>(), align_of::<$ty>());
            let c = c_layout(stringify!($ty));
            println!("{:<28} size {:>6} align {:>2} (C: {:>6} / {:>2})",
                stringify!($ty), rust.0, rust.1, c.0, c.1);
            if rust != c {
                mismatches.push(format!("{}: Rust {:?} != C {:?}", stringify!($ty), rust, c));
            }
        )*
        assert!(mismatches.is_empty(), "layout mismatches:\n{}", mismatches.join("\n"));
    }};
}

#[test]
fn struct_layouts_match_the_c_compiler() {
    check_layouts!(
        pjsua_config,
        pjsua_media_config,
        pjsua_acc_config,
        pjsua_transport_config,
        pjsua_logging_config,
        pjsua_call_info,
        pjsua_call_setting,
        pjsua_stream_stat,
        pjsua_codec_info,
        pjsua_callback,
        pjmedia_port,
        pjmedia_port_info,
        pjmedia_frame,
        pjmedia_codec_param,
        pjmedia_codec_opus_config,
        pjsip_cred_info,
        pj_str_t,
        pj_thread_desc,
    );
}

#[test]
fn compile_time_configuration_is_ours() {
    // build/config_site.h raises these; bindings from a stock config would still have 4 calls.
    assert_eq!(
        PJSUA_MAX_CALLS, 256,
        "PJSUA_MAX_CALLS from build/config_site.h"
    );
    assert_eq!(PJSUA_MAX_CONF_PORTS, 2 * 256 + 8);
    assert_eq!(PJ_IOQUEUE_MAX_HANDLES, 2048);
    // Media keep-alive fields exist only with PJMEDIA_STREAM_ENABLE_KA.
    let acc = pjsua_acc_config::default();
    let _ = (acc.use_stream_ka, acc.stream_ka_cfg);
}
