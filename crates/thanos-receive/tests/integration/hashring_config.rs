//! Hashring configuration parsing, validation and tenant routing.

use thanos_model::Labels;
use thanos_receive::hashring::{
    Algorithm, ConfigError, Endpoint, Hashring, HashringError, LoadedConfig, MultiHashring,
    RingError, TenantMatcherType, config_hash, parse_config,
};

fn parse(json: &str) -> Vec<thanos_receive::hashring::HashringConfig> {
    parse_config(json.as_bytes()).unwrap_or_else(|e| panic!("parsing {json}: {e}"))
}

fn build(json: &str, algorithm: Algorithm, rf: u64) -> Result<MultiHashring, ConfigError> {
    MultiHashring::new(&parse(json), algorithm, rf)
}

fn nginx() -> Labels {
    Labels::from_pairs([("pod", "nginx")])
}

#[test]
fn parses_every_field() {
    let cfg = parse(
        r#"[
          {
            "hashring": "group-a",
            "tenants": ["a", "b"],
            "tenant_matcher_type": "exact",
            "endpoints": [
              "node-1:10901",
              {"address": "node-2:10901", "az": "zone-1"},
              {"address": "node-3:10901", "capnproto_address": "node-3:7000", "az": "zone-2"}
            ],
            "algorithm": "ketama",
            "external_labels": {"team": "a", "env": "prod"},
            "shuffle_sharding_config": {
              "shard_size": 0, "cache_size": 50, "zone_awareness_disabled": true,
              "overrides": [{"shard_size": 2, "tenants": ["x*"], "tenant_matcher_type": "glob"}]
            },
            "some_future_key": 1
          },
          {"endpoints": ["node-9:10901"], "tenant_matcher_type": "glob", "tenants": null}
        ]"#,
    );
    assert_eq!(cfg.len(), 2);
    let a = &cfg[0];
    assert_eq!(a.name, "group-a");
    assert_eq!(a.tenants, ["a", "b"]);
    assert_eq!(a.tenant_matcher_type, TenantMatcherType::Exact);
    assert_eq!(
        a.endpoints,
        [
            Endpoint::new("node-1:10901"),
            Endpoint::new("node-2:10901").with_az("zone-1"),
            Endpoint {
                address: "node-3:10901".into(),
                capnproto_address: "node-3:7000".into(),
                az: "zone-2".into()
            },
        ]
    );
    assert_eq!(a.endpoints[0].capnproto_address, "node-1:19391");
    assert_eq!(a.effective_algorithm(Algorithm::Hashmod), Algorithm::Ketama);
    assert_eq!(a.external_labels.get("team").map(String::as_str), Some("a"));
    assert_eq!(a.external_labels.len(), 2);
    let ss = &a.shuffle_sharding_config;
    assert_eq!(
        (ss.shard_size, ss.cache_size, ss.zone_awareness_disabled),
        (0, 50, true)
    );
    assert_eq!(ss.overrides[0].tenant_matcher_type, TenantMatcherType::Glob);
    assert!(ss.is_active());

    let b = &cfg[1];
    assert!(b.tenants.is_empty());
    assert_eq!(b.tenant_matcher_type, TenantMatcherType::Glob);
    assert_eq!(
        b.effective_algorithm(Algorithm::Hashmod),
        Algorithm::Hashmod
    );
}

#[test]
fn rejects_empty_and_invalid_content() {
    for empty in ["", "  \n", "[]", "null"] {
        assert!(
            matches!(parse_config(empty.as_bytes()), Err(ConfigError::Empty)),
            "{empty:?} must be rejected as empty"
        );
    }
    let err = parse_config(b"[{\"endpoints\": [\"a:1\"]").map(|_| ());
    assert!(matches!(err, Err(ConfigError::Parse(_))), "{err:?}");
    for bad in [
        r#"{"endpoints": ["a:1"]}"#,
        r#"[{"endpoints": [""]}]"#,
        r#"[{"endpoints": [{"az": "z"}]}]"#,
        r#"[{"endpoints": [42]}]"#,
        r#"[{"endpoints": ["a:1"], "tenant_matcher_type": "regex"}]"#,
    ] {
        let err = parse_config(bad.as_bytes());
        assert!(matches!(err, Err(ConfigError::Parse(_))), "{bad}: {err:?}");
    }
    let msg = parse_config(br#"[{"endpoints": [{"az": "z"}]}]"#)
        .map(|_| ())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("endpoint address must be set"), "{msg}");
    // An empty tenant matcher type means exact, as in Thanos.
    let cfg = parse(r#"[{"endpoints": ["a:1"], "tenant_matcher_type": ""}]"#);
    assert_eq!(cfg[0].tenant_matcher_type, TenantMatcherType::Exact);
}

#[test]
fn loads_files_with_hash_and_path_context() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("hashrings.json");
    let content = br#"[{"endpoints": ["a:1", "b:1"]}]"#;
    std::fs::write(&path, content).unwrap_or_else(|e| panic!("{e}"));
    let loaded = LoadedConfig::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.hashrings.len(), 1);
    assert_eq!(loaded.hash, config_hash(content));
    assert!(loaded.hash >= 0.0 && loaded.hash < 2f64.powi(48));

    std::fs::write(&path, b"[]").unwrap_or_else(|e| panic!("{e}"));
    let err = LoadedConfig::from_file(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("hashrings.json") && err.contains("configuration file is empty"),
        "{err}"
    );

    let missing = dir.path().join("missing.json");
    let err = LoadedConfig::from_file(&missing);
    assert!(matches!(err, Err(ConfigError::Read { .. })), "{err:?}");
}

#[test]
fn too_few_endpoints_is_a_clear_error() {
    for algorithm in [Algorithm::Hashmod, Algorithm::Ketama] {
        let err = build(
            r#"[{"hashring": "small", "endpoints": ["a:1", "b:1"]}]"#,
            algorithm,
            3,
        )
        .err()
        .unwrap_or_else(|| panic!("{algorithm}: 2 endpoints with RF 3 must be rejected"));
        assert!(
            matches!(
                &err,
                ConfigError::Hashring {
                    hashring,
                    source: RingError::TooFewEndpoints { endpoints: 2, replication_factor: 3 },
                } if hashring == "small"
            ),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(
            msg.contains("small") && msg.contains("replication factor"),
            "{msg}"
        );
    }
    // Unnamed hashrings are named by position.
    let err = build(
        r#"[{"endpoints": ["a:1"]}, {"endpoints": []}]"#,
        Algorithm::Hashmod,
        1,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.starts_with("hashring #1:"), "{err}");
    assert!(matches!(
        build(r#"[{"endpoints": ["a:1"]}]"#, Algorithm::Hashmod, 0),
        Err(ConfigError::ZeroReplicationFactor)
    ));
}

#[test]
fn az_requires_ketama() {
    let json =
        r#"[{"endpoints": [{"address": "a:1", "az": "z1"}, {"address": "b:1", "az": "z2"}]}]"#;
    let err = build(json, Algorithm::Hashmod, 1);
    assert!(
        matches!(
            err,
            Err(ConfigError::Hashring {
                source: RingError::AzWithHashmod { .. },
                ..
            })
        ),
        "{err:?}"
    );
    assert!(build(json, Algorithm::Ketama, 2).is_ok());
    // The per-hashring algorithm overrides the flag.
    let json = r#"[{"algorithm": "ketama", "endpoints": [{"address": "a:1", "az": "z1"}]}]"#;
    assert!(build(json, Algorithm::Hashmod, 1).is_ok());
}

#[test]
fn shuffle_sharding_is_validated() {
    let with = |algorithm: &str, ss: &str| {
        format!(
            r#"[{{"algorithm": "{algorithm}", "endpoints": ["a:1", "b:1", "c:1"], "shuffle_sharding_config": {ss}}}]"#
        )
    };
    // Inactive (shard_size 0) is accepted with either algorithm.
    assert!(
        build(
            &with("hashmod", r#"{"shard_size": 0}"#),
            Algorithm::Hashmod,
            1
        )
        .is_ok()
    );
    assert!(
        build(
            &with("ketama", r#"{"cache_size": 10}"#),
            Algorithm::Hashmod,
            1
        )
        .is_ok()
    );
    let cases = [
        (with("hashmod", r#"{"shard_size": 2}"#), "hashmod"),
        (with("ketama", r#"{"shard_size": 4}"#), "larger"),
        (
            with(
                "ketama",
                r#"{"overrides": [{"shard_size": 9, "tenants": ["t"]}]}"#,
            ),
            "larger",
        ),
        (
            with(
                "ketama",
                r#"{"overrides": [{"shard_size": 0, "tenants": ["[x"], "tenant_matcher_type": "glob"}]}"#,
            ),
            "syntax error",
        ),
        (with("ketama", r#"{"shard_size": 2}"#), "not supported"),
    ];
    for (json, want) in cases {
        let msg = build(&json, Algorithm::Hashmod, 1)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_else(|| panic!("{json} must be rejected"));
        assert!(msg.contains(want), "{json}: {msg}");
    }
}

#[test]
fn tenants_route_to_the_first_matching_hashring() {
    let ring = build(
        r#"[
          {"hashring": "exact", "tenants": ["tenant1", "tenant2"], "endpoints": ["e1:1"]},
          {"hashring": "glob", "tenants": ["team-*", "ops-[0-9]"], "tenant_matcher_type": "glob", "endpoints": ["g1:1"]},
          {"hashring": "shadowed", "tenants": ["tenant1"], "endpoints": ["s1:1"]},
          {"hashring": "default", "endpoints": ["d1:1", "d2:1"]},
          {"hashring": "after-default", "tenants": ["late"], "endpoints": ["l1:1"]}
        ]"#,
        Algorithm::Hashmod,
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let s = nginx();
    let route = |tenant: &str| ring.hashring_for(tenant).map(|(name, _)| name.to_owned());
    assert_eq!(route("tenant1").as_deref(), Ok("exact"));
    assert_eq!(route("tenant2").as_deref(), Ok("exact"));
    assert_eq!(route("team-a").as_deref(), Ok("glob"));
    assert_eq!(route("ops-7").as_deref(), Ok("glob"));
    assert_eq!(route("ops-x").as_deref(), Ok("default"));
    assert_eq!(route("late").as_deref(), Ok("default"));
    assert_eq!(route("tenant3").as_deref(), Ok("default"));
    // Cached answers are the same.
    assert_eq!(route("team-a").as_deref(), Ok("glob"));

    let addr = |tenant: &str| ring.get_n(tenant, &s, 0).map(|e| e.address.clone());
    assert_eq!(addr("tenant1").as_deref(), Ok("e1:1"));
    assert_eq!(addr("team-b").as_deref(), Ok("g1:1"));
    assert!(matches!(
        addr("whoever").as_deref(),
        Ok("d1:1") | Ok("d2:1")
    ));
    assert_eq!(
        ring.get_n("tenant1", &s, 1),
        Err(HashringError::InsufficientNodes { have: 1, want: 2 })
    );

    let nodes: Vec<&str> = ring.nodes().iter().map(|e| e.address.as_str()).collect();
    assert_eq!(nodes, ["d1:1", "d2:1", "e1:1", "g1:1", "l1:1", "s1:1"]);
    assert_eq!(ring.len(), 5);
    assert_eq!(ring.replication_factor(), 1);
}

#[test]
fn no_matching_hashring() {
    let ring = build(
        r#"[{"tenants": ["a"], "endpoints": ["x:1"]}, {"tenants": ["b*"], "tenant_matcher_type": "glob", "endpoints": ["y:1"]}]"#,
        Algorithm::Ketama,
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let err = ring.get_n("c", &nginx(), 0);
    assert_eq!(
        err,
        Err(HashringError::NoMatchingHashring { tenant: "c".into() })
    );
    let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        msg.contains("no matching hashring to handle tenant"),
        "{msg}"
    );
    assert_eq!(
        ring.get_n("bob", &nginx(), 0).map(|e| e.address.as_str()),
        Ok("y:1")
    );
    // Exact matching is literal: a pattern-looking tenant name only matches itself.
    let exact = build(
        r#"[{"tenants": ["b*"], "endpoints": ["x:1"]}]"#,
        Algorithm::Hashmod,
        1,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(exact.get_n("bob", &nginx(), 0).is_err());
    assert!(exact.get_n("b*", &nginx(), 0).is_ok());
}

#[test]
fn bad_glob_patterns_are_rejected_at_load() {
    let err = build(
        r#"[{"hashring": "g", "tenants": ["ok-*", "bad-["], "tenant_matcher_type": "glob", "endpoints": ["x:1"]}]"#,
        Algorithm::Hashmod,
        1,
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("hashring g") && err.contains("bad-["), "{err}");
}

#[test]
fn ketama_routing_through_the_multi_hashring_matches_the_golden_values() {
    // Same nodes as Thanos's golden test but with the production 1000 sections per node:
    // the multi-hashring must give exactly what a directly built ketama ring gives.
    let ring = build(
        r#"[{"algorithm": "ketama", "endpoints": ["node-1", "node-2", "node-3"]}]"#,
        Algorithm::Hashmod,
        3,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let direct = thanos_receive::hashring::KetamaHashring::new(
        vec![
            Endpoint::new("node-1"),
            Endpoint::new("node-2"),
            Endpoint::new("node-3"),
        ],
        3,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for pod in ["nginx", "thanos", "prometheus", "alertmanager"] {
        let s = Labels::from_pairs([("pod", pod)]);
        for n in 0..3 {
            assert_eq!(ring.get_n("tenant", &s, n), direct.get_n("tenant", &s, n));
        }
    }
}
