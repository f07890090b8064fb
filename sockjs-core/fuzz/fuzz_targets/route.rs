//! Route parsing: never panics; what parses as a session route has valid segments and
//! parses the same once rebuilt from its parts.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockjs_core::route::Route;

fuzz_target!(|path: &str| {
    let Some(route) = Route::parse(path) else {
        return;
    };
    if let Route::Session {
        server, session, ..
    } = route
    {
        for segment in [server, session] {
            assert!(!segment.is_empty());
            assert!(!segment.contains(['/', '.']));
        }
        let kind = path.rsplit('/').next().unwrap_or_default();
        let rebuilt = format!("/{server}/{session}/{kind}");
        assert_eq!(Route::parse(&rebuilt), Some(route));
        assert_eq!(rebuilt, path);
    }
    if route == Route::Iframe {
        assert!(path.starts_with("/iframe") && path.ends_with(".html"));
    }
    let _ = route.allowed_methods();
});
