//! What every `agent::issuer::store::IssuerStorage` backend does: records by collection and
//! key, atomic conditional batches (every write or none, after every expectation holds),
//! prefix scans in key order with skip/limit, counts, and `scan_after` pages from a cursor.
//! Each function takes a fresh, empty store.

use agent::issuer::store::{BatchError, Expect, IssuerStorage, IssuerStorageExt, Write};

fn put(collection: &'static str, key: &str, value: &str) -> Write {
    Write::put(collection, key, &value).unwrap()
}

fn keys(page: Vec<(String, Vec<u8>)>) -> Vec<String> {
    page.into_iter().map(|(key, _)| key).collect()
}

/// A record put by a batch reads back as it was written; an absent key reads None.
pub async fn get_reads_what_a_batch_put<S: IssuerStorage>(store: &S) {
    assert_eq!(store.get("t", "a").await.unwrap(), None);
    store
        .apply(vec![], vec![put("t", "a", "one")])
        .await
        .unwrap();
    assert_eq!(
        store.get("t", "a").await.unwrap().as_deref(),
        Some(&b"\"one\""[..])
    );
    assert_eq!(
        store.get_json::<String>("t", "a").await.unwrap().as_deref(),
        Some("one")
    );
    store
        .apply(vec![], vec![put("t", "a", "two")])
        .await
        .unwrap();
    assert_eq!(
        store.get_json::<String>("t", "a").await.unwrap().as_deref(),
        Some("two"),
        "a put replaces"
    );
}

/// An expectation that fails refuses the whole batch with `Conflict`, and none of its
/// writes lands.
pub async fn a_batch_applies_whole_or_not_at_all<S: IssuerStorage>(store: &S) {
    let absent = || Expect::Absent {
        collection: "t",
        key: "a".into(),
    };
    store
        .apply(vec![absent()], vec![put("t", "a", "1"), put("t", "b", "2")])
        .await
        .unwrap();
    let error = store
        .apply(
            vec![absent()],
            vec![put("t", "c", "3"), Write::delete("t", "b")],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, BatchError::Conflict), "{error}");
    assert_eq!(store.get("t", "c").await.unwrap(), None);
    assert_eq!(
        store.get_json::<String>("t", "b").await.unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(store.count("t", "").await.unwrap(), 2);
    // Several expectations: one failing is enough.
    let error = store
        .apply(
            vec![
                Expect::Absent {
                    collection: "t",
                    key: "z".into(),
                },
                absent(),
            ],
            vec![put("t", "z", "26")],
        )
        .await
        .unwrap_err();
    assert!(matches!(error, BatchError::Conflict), "{error}");
    assert_eq!(store.get("t", "z").await.unwrap(), None);
}

/// `Expect::Equals` holds for the value as written (not as stored at rest), fails for any
/// other value and for an absent key.
pub async fn expect_equals_compares_the_stored_value<S: IssuerStorage>(store: &S) {
    store.apply(vec![], vec![put("t", "a", "1")]).await.unwrap();
    let equals = |value: &[u8]| Expect::Equals {
        collection: "t",
        key: "a".into(),
        value: value.to_vec(),
    };
    let stale = store
        .apply(vec![equals(b"\"7\"")], vec![put("t", "a", "7")])
        .await
        .unwrap_err();
    assert!(matches!(stale, BatchError::Conflict), "{stale}");
    store
        .apply(vec![equals(b"\"1\"")], vec![put("t", "a", "5")])
        .await
        .unwrap();
    assert_eq!(
        store.get_json::<String>("t", "a").await.unwrap().as_deref(),
        Some("5")
    );
    let missing = Expect::Equals {
        collection: "t",
        key: "nothing".into(),
        value: b"\"1\"".to_vec(),
    };
    let error = store.apply(vec![missing], vec![]).await.unwrap_err();
    assert!(matches!(error, BatchError::Conflict), "{error}");
}

/// A delete removes its record; deleting an absent key is no error.
pub async fn deletes_in_a_batch_remove_records<S: IssuerStorage>(store: &S) {
    store
        .apply(vec![], vec![put("t", "a", "1"), put("t", "b", "2")])
        .await
        .unwrap();
    store
        .apply(
            vec![],
            vec![Write::delete("t", "a"), Write::delete("t", "never")],
        )
        .await
        .unwrap();
    assert_eq!(store.get("t", "a").await.unwrap(), None);
    assert_eq!(keys(store.scan("t", "", 0, 10).await.unwrap()), ["b"]);
    // Put and delete of the same key in one batch: the later write wins.
    store
        .apply(vec![], vec![put("t", "c", "3"), Write::delete("t", "c")])
        .await
        .unwrap();
    assert_eq!(store.get("t", "c").await.unwrap(), None);
}

/// The same key in two collections is two records; scans and counts keep to theirs.
pub async fn collections_do_not_see_each_other<S: IssuerStorage>(store: &S) {
    store
        .apply(vec![], vec![put("t", "a", "in t"), put("u", "a", "in u")])
        .await
        .unwrap();
    assert_eq!(
        store.get_json::<String>("t", "a").await.unwrap().as_deref(),
        Some("in t")
    );
    assert_eq!(
        store.get_json::<String>("u", "a").await.unwrap().as_deref(),
        Some("in u")
    );
    assert_eq!(store.count("t", "").await.unwrap(), 1);
    assert_eq!(store.count("v", "").await.unwrap(), 0);
    assert_eq!(
        keys(store.scan_after("u", "", None, 10).await.unwrap()),
        ["a"]
    );
    store
        .apply(vec![], vec![Write::delete("t", "a")])
        .await
        .unwrap();
    assert_eq!(store.count("u", "").await.unwrap(), 1);
}

/// `scan` gives the records under a prefix in bytewise key order, skipping `skip`, at most
/// `limit`, with their values.
pub async fn scan_pages_by_prefix_in_key_order<S: IssuerStorage>(store: &S) {
    let writes = ["o/3", "o/1", "o/2", "p/1", "o"]
        .iter()
        .map(|k| put("t", k, k))
        .collect();
    store.apply(vec![], writes).await.unwrap();
    assert_eq!(
        keys(store.scan("t", "o/", 0, 10).await.unwrap()),
        ["o/1", "o/2", "o/3"]
    );
    assert_eq!(keys(store.scan("t", "o/", 1, 1).await.unwrap()), ["o/2"]);
    assert!(store.scan("t", "o/", 3, 10).await.unwrap().is_empty());
    assert!(store.scan("t", "o/", 0, 0).await.unwrap().is_empty());
    assert_eq!(
        keys(store.scan("t", "", 0, 10).await.unwrap()),
        ["o", "o/1", "o/2", "o/3", "p/1"]
    );
    let values: Vec<String> = store.scan_json("t", "p/", 0, 10).await.unwrap();
    assert_eq!(values, ["p/1"]);
}

/// `count` counts the records under a prefix.
pub async fn count_counts_by_prefix<S: IssuerStorage>(store: &S) {
    assert_eq!(store.count("t", "").await.unwrap(), 0);
    let writes = ["a1", "a2", "b1"].iter().map(|k| put("t", k, k)).collect();
    store.apply(vec![], writes).await.unwrap();
    assert_eq!(store.count("t", "a").await.unwrap(), 2);
    assert_eq!(store.count("t", "b").await.unwrap(), 1);
    assert_eq!(store.count("t", "c").await.unwrap(), 0);
    assert_eq!(store.count("t", "").await.unwrap(), 3);
}

/// `scan_after` pages through a prefix after a cursor: each page starts after the last key
/// of the one before, stops at the prefix's end, and a cursor before the prefix starts at it.
pub async fn scan_after_pages_from_a_cursor<S: IssuerStorage>(store: &S) {
    let writes = ["a1", "a2", "a3", "b1"]
        .iter()
        .map(|k| put("t", k, k))
        .chain([put("u", "a4", "other")])
        .collect();
    store.apply(vec![], writes).await.unwrap();
    let first = keys(store.scan_after("t", "a", None, 2).await.unwrap());
    assert_eq!(first, ["a1", "a2"]);
    let second = keys(store.scan_after("t", "a", Some("a2"), 2).await.unwrap());
    assert_eq!(
        second,
        ["a3"],
        "the prefix ends the page, other collections are not seen"
    );
    assert!(store
        .scan_after("t", "a", Some("a3"), 2)
        .await
        .unwrap()
        .is_empty());
    let from = keys(store.scan_after("t", "b", Some("a"), 5).await.unwrap());
    assert_eq!(from, ["b1"]);
    let all = keys(store.scan_after("t", "", Some("a1"), 10).await.unwrap());
    assert_eq!(all, ["a2", "a3", "b1"]);
    assert!(store.scan_after("t", "", None, 0).await.unwrap().is_empty());
    // A cursor between keys starts at the next one; values come with their keys.
    let page = store.scan_after("t", "", Some("a25"), 1).await.unwrap();
    assert_eq!(page, [("a3".to_string(), b"\"a3\"".to_vec())]);
    // Paging to the end visits every key once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = keys(
            store
                .scan_after("t", "", cursor.as_deref(), 1)
                .await
                .unwrap(),
        );
        let Some(last) = page.last().cloned() else {
            break;
        };
        seen.extend(page);
        cursor = Some(last);
    }
    assert_eq!(seen, ["a1", "a2", "a3", "b1"]);
}

/// Keys order and prefix-match by their bytes, whatever they hold: uppercase before
/// lowercase, non-ASCII after ASCII, a prefix's `%`, `_` and `\` only themselves, a NUL
/// inside a key kept; and of two writes to one key in a batch the later wins.
pub async fn keys_order_and_match_by_their_bytes<S: IssuerStorage>(store: &S) {
    let written = ["a%", "a_", "ab", "a\\", "B", "é", "z", "a\0b", "a"];
    let writes = written.iter().map(|k| put("t", k, k)).collect();
    store.apply(vec![], writes).await.unwrap();
    assert_eq!(
        keys(store.scan("t", "", 0, 20).await.unwrap()),
        ["B", "a", "a\0b", "a%", "a\\", "a_", "ab", "z", "é"]
    );
    assert_eq!(keys(store.scan("t", "a%", 0, 20).await.unwrap()), ["a%"]);
    assert_eq!(keys(store.scan("t", "a_", 0, 20).await.unwrap()), ["a_"]);
    assert_eq!(keys(store.scan("t", "a\\", 0, 20).await.unwrap()), ["a\\"]);
    assert_eq!(store.count("t", "a").await.unwrap(), 6);
    assert_eq!(store.count("t", "é").await.unwrap(), 1);
    assert_eq!(
        store
            .get_json::<String>("t", "a\0b")
            .await
            .unwrap()
            .as_deref(),
        Some("a\0b")
    );
    assert_eq!(store.get("t", "a\0").await.unwrap(), None);
    assert_eq!(
        keys(store.scan_after("t", "a", Some("a\0b"), 2).await.unwrap()),
        ["a%", "a\\"]
    );
    store
        .apply(
            vec![],
            vec![put("t", "k", "first"), put("t", "k", "second")],
        )
        .await
        .unwrap();
    assert_eq!(
        store.get_json::<String>("t", "k").await.unwrap().as_deref(),
        Some("second"),
        "the later write to a key wins"
    );
}

/// An email template of `org` named `name` (created now, id from `n`).
fn email_template(org: &str, n: u64, name: &str) -> agent::issuer::StoredEmailTemplate {
    agent::issuer::StoredEmailTemplate {
        id: format!("{n:012x}{:012x}", n * 7),
        org_id: org.into(),
        spec: agent::issuer::EmailTemplateSpec::new(
            name,
            "Hi {{customerName}}",
            "<p>Hello {{customerName}}</p>",
            "Open {{inviteUrl}}",
            Some(agent::issuer::Logo::from_bytes(b"GIF89a-logo".to_vec(), "logo").unwrap()),
        )
        .unwrap(),
        created_ms: n,
        updated_ms: n,
    }
}

/// Email templates (`EmailTemplateStorage`, over every backend): stored once per id, read
/// back whole (logo bytes too) only by their organisation, listed oldest first per
/// organisation, replaced and removed only from what was read.
pub async fn email_templates_are_kept_per_organisation<S: IssuerStorage>(store: &S) {
    use agent::issuer::EmailTemplateStorage;
    let first = email_template("org-a", 1, "First");
    let second = email_template("org-a", 2, "Second");
    let other = email_template("org-b", 3, "Theirs");
    for template in [&second, &first, &other] {
        store.insert_email_template(template).await.unwrap();
    }
    assert!(
        matches!(
            store.insert_email_template(&first).await,
            Err(BatchError::Conflict)
        ),
        "an id is stored once"
    );
    assert_eq!(
        store.email_template("org-a", &first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        store.email_template("org-b", &first.id).await.unwrap(),
        None,
        "another organisation's is not found"
    );
    assert_eq!(store.email_template("org-a", "../x").await.unwrap(), None);
    let (page, total) = store.email_templates("org-a", 0, 10).await.unwrap();
    assert_eq!(total, 2);
    assert_eq!(page, vec![first.clone(), second.clone()], "oldest first");
    let (page, total) = store.email_templates("org-a", 1, 10).await.unwrap();
    assert_eq!((page, total), (vec![second.clone()], 2));

    let mut renamed = first.clone();
    renamed.spec.name = "Renamed".into();
    renamed.updated_ms = 10;
    store
        .replace_email_template(&first, &renamed)
        .await
        .unwrap();
    assert!(
        matches!(
            store.replace_email_template(&first, &renamed).await,
            Err(BatchError::Conflict)
        ),
        "a replacement from a stale read is refused"
    );
    assert!(matches!(
        store.remove_email_template(&first).await,
        Err(BatchError::Conflict)
    ));
    assert_eq!(
        store.email_template("org-a", &first.id).await.unwrap(),
        Some(renamed.clone())
    );
    store.remove_email_template(&renamed).await.unwrap();
    assert_eq!(
        store.email_template("org-a", &first.id).await.unwrap(),
        None
    );
    assert_eq!(store.email_templates("org-a", 0, 10).await.unwrap().1, 1);
    assert_eq!(
        store.email_templates("org-b", 0, 10).await.unwrap().0,
        vec![other]
    );
}
