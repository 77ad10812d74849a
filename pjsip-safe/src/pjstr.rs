//! Conversions between Rust strings and PJSIP's `pj_str_t` (pointer + length, not
//! NUL-terminated, never owning).

use std::ffi::{c_char, CStr, CString};

use pjsip_sys as sys;

/// A `pj_str_t` view of `s`. PJSIP does not copy it: `s` must outlive every use of the result,
/// except where the called function documents that it duplicates the string (most pjsua setters,
/// e.g. `pjsua_acc_add`, `pjsua_init`).
pub(crate) fn borrow(s: &CStr) -> sys::pj_str_t {
    sys::pj_str_t {
        ptr: s.as_ptr() as *mut c_char,
        slen: s.to_bytes().len() as _,
    }
}

/// Copies a `pj_str_t` into a `String` (lossy for invalid UTF-8). An empty or null string gives "".
pub(crate) fn to_string(s: &sys::pj_str_t) -> String {
    if s.ptr.is_null() || s.slen <= 0 {
        return String::new();
    }
    // SAFETY: PJSIP guarantees `ptr` points at `slen` readable bytes for a non-empty pj_str_t.
    let bytes = unsafe { std::slice::from_raw_parts(s.ptr as *const u8, s.slen as usize) };
    String::from_utf8_lossy(bytes).into_owned()
}

/// A NUL-terminated copy of a configuration string; interior NULs are a configuration error.
pub(crate) fn cstring(key: &'static str, value: &str) -> crate::Result<CString> {
    CString::new(value).map_err(|_| crate::Error::Config {
        key,
        problem: "contains a NUL byte".into(),
    })
}

/// Reads a fixed-size C char array (e.g. `pkt_info.src_name`) up to its first NUL.
pub(crate) fn from_c_array(chars: &[c_char]) -> String {
    let bytes: Vec<u8> = chars
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}
