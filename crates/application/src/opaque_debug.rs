//! [`opaque_debug!`]: `Debug` for a struct that holds ports, which print nothing useful.

/// Implements `Debug` for each named struct, showing its name only.
macro_rules! opaque_debug {
    ($($name:ident),+ $(,)?) => {
        $(impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        })+
    };
}
pub(crate) use opaque_debug;
