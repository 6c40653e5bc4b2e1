//! `Debug` that keeps secrets and personal data out of logs: [`Redacted`] prints `[redacted]`,
//! and [`redacted_debug!`](crate::redacted_debug) implements `Debug` for a struct showing the
//! fields named `shown` and `[redacted]` for the fields named `redacted`. Every field must be
//! named in one of the two lists (the impl destructures the struct), so a field added later
//! does not appear in logs unnoticed.

use std::fmt;

/// Prints as `[redacted]`.
pub struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// `redacted_debug!(Type { shown: [a, b], redacted: [c] });` implements `Debug` for the struct
/// `Type`, showing `a` and `b` and printing `c: [redacted]`. Every field must be listed.
#[macro_export]
macro_rules! redacted_debug {
    ($type:ident { shown: [$($shown:ident),* $(,)?], redacted: [$($hidden:ident),* $(,)?] $(,)? }) => {
        impl ::core::fmt::Debug for $type {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                // Destructured so that a field missing from both lists does not compile.
                let $type { $($shown,)* $($hidden: _,)* } = self;
                f.debug_struct(stringify!($type))
                    $(.field(stringify!($shown), $shown))*
                    $(.field(stringify!($hidden), &$crate::redact::Redacted))*
                    .finish()
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[allow(dead_code)]
    struct Account {
        id: u32,
        email: String,
        password: String,
    }
    crate::redacted_debug!(Account {
        shown: [id],
        redacted: [email, password]
    });

    #[test]
    fn redacted_fields_are_not_shown() {
        let shown = format!(
            "{:?}",
            Account {
                id: 7,
                email: "jane@example.com".into(),
                password: "hunter2".into()
            }
        );
        assert_eq!(
            shown,
            "Account { id: 7, email: [redacted], password: [redacted] }"
        );
    }
}
