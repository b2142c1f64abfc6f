use super::*;

fn with(extra: &[(&str, &str)]) -> KafkaConfig {
    let mut k = KafkaConfig::new("localhost:9092");
    k.extra = extra
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    k
}

#[test]
fn group_protocol_settings() {
    // The worker's consumer leaves the session timeout to the broker under KIP-848.
    let kip848 = with(&[("group.protocol", "consumer")]);
    assert!(kip848.incremental_rebalancing());
    assert_eq!(kip848.group_consumer("g").get("session.timeout.ms"), None);
    let classic = with(&[]);
    assert!(!classic.incremental_rebalancing());
    assert_eq!(
        classic.group_consumer("g").get("session.timeout.ms"),
        Some("10000")
    );
    assert!(
        with(&[("partition.assignment.strategy", "cooperative-sticky")]).incremental_rebalancing()
    );
    assert!(
        !with(&[("partition.assignment.strategy", "range,roundrobin")]).incremental_rebalancing()
    );

    // The embedded broker's preference yields to any classic-group setting of the user.
    let mut embedded = with(&[]);
    embedded.prefer_consumer_group_protocol();
    assert!(embedded.uses_consumer_group_protocol());
    let consumer = embedded.group_consumer("g");
    assert_eq!(consumer.get("group.protocol"), Some("consumer"));
    assert_eq!(consumer.get("session.timeout.ms"), None);
    assert_eq!(embedded.producer().get("group.protocol"), None);
    let mut chosen = with(&[("session.timeout.ms", "3000")]);
    chosen.prefer_consumer_group_protocol();
    assert!(!chosen.uses_consumer_group_protocol());
    let mut twice = with(&[("group.protocol", "classic")]);
    twice.prefer_consumer_group_protocol();
    assert_eq!(twice.extra.len(), 1);
}

#[test]
fn static_membership_in_classic_groups_unless_the_user_chose() {
    let classic = with(&[]);
    let c = classic.group_member("g", Some("g-1"));
    assert_eq!(c.get("group.instance.id"), Some("g-1"));
    assert_eq!(classic.group_consumer("g").get("group.instance.id"), None);
    let chosen = with(&[("group.instance.id", "mine")]);
    assert_eq!(
        chosen
            .group_member("g", Some("g-1"))
            .get("group.instance.id"),
        Some("mine")
    );
    let kip848 = with(&[("group.protocol", "consumer")]);
    assert_eq!(
        kip848
            .group_member("g", Some("g-1"))
            .get("group.instance.id"),
        None
    );
    let mut embedded = with(&[]);
    embedded.prefer_consumer_group_protocol();
    assert_eq!(
        embedded
            .group_member("g", Some("g-1"))
            .get("group.instance.id"),
        None
    );
}

#[test]
fn short_fetch_wait_for_the_embedded_broker_unless_the_user_chose() {
    let wait = |k: &KafkaConfig| {
        k.group_consumer("g")
            .get("fetch.wait.max.ms")
            .map(String::from)
    };
    let mut k = KafkaConfig::new("b:9092");
    assert_eq!(wait(&k).as_deref(), Some("100"));
    k.short_fetch_wait();
    assert_eq!(wait(&k).as_deref(), Some("10"));
    k.extra = vec![("fetch.wait.max.ms".into(), "250".into())];
    assert_eq!(wait(&k).as_deref(), Some("250"));
}

#[test]
fn user_properties_reach_the_clients_they_are_for() {
    let k = with(&[
        ("session.timeout.ms", "45000"),
        ("fetch.min.bytes", "1000"),
        ("linger.ms", "50"),
        ("sasl.username", "u"),
    ]);
    let (p, g, r, a) = (
        k.producer(),
        k.group_consumer("g"),
        k.restore_consumer("g"),
        k.admin(),
    );
    for c in [&p, &g, &r, &a] {
        assert_eq!(
            c.get("sasl.username"),
            Some("u"),
            "global keys go everywhere"
        );
    }
    assert_eq!(p.get("linger.ms"), Some("50"));
    assert_eq!(p.get("session.timeout.ms"), None);
    assert_eq!(p.get("fetch.min.bytes"), None);
    assert_eq!(
        g.get("session.timeout.ms"),
        Some("45000"),
        "the user's value wins"
    );
    assert_eq!(g.get("fetch.min.bytes"), Some("1000"));
    assert_eq!(g.get("linger.ms"), None);
    assert_eq!(
        r.get("session.timeout.ms"),
        None,
        "assign-only: no group timeouts"
    );
    assert_eq!(r.get("fetch.min.bytes"), Some("1000"));
    assert_eq!(a.get("linger.ms"), None);
    assert_eq!(a.get("fetch.min.bytes"), None);
    let t = k.transactional_producer("t");
    assert_eq!(t.get("linger.ms"), Some("50"));
    assert_eq!(t.get("transactional.id"), Some("t"));
}
