//! The DNS index's memory at 1,000 Services and 10,000 endpoints (issue
//! 15's goal: the DNS server well under half of CoreDNS's ≈ 58 MB there),
//! counted by a wrapping allocator, so it is the index's live bytes, not
//! the heap's fragmentation or what decoding the objects left behind.
//! Its own test binary: the counting allocator is global.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use serde_json::json;
use skiff_control_plane::dns::DnsIndex;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; only a
// counter is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is System's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

#[test]
fn a_thousand_services_and_ten_thousand_endpoints_fit_in_a_few_mb() {
    let before = LIVE.load(Ordering::Relaxed);
    let mut index = DnsIndex::new();
    for s in 0..1000u32 {
        let name = format!("service-number-{s}");
        let ns = format!("namespace-{}", s % 20);
        let ip = format!("10.96.{}.{}", 1 + s / 250, 1 + s % 250);
        let service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": ip, "clusterIPs": [ip],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                               {"name": "metrics", "port": 9090, "protocol": "TCP"}]},
        }))
        .expect("service");
        index.upsert_service(&service);
        let endpoints: Vec<_> = (0..10u32)
            .map(|e| {
                let n = s * 10 + e;
                json!({"addresses": [format!("10.244.{}.{}", n / 250, 1 + n % 250)],
                       "conditions": {"ready": true}})
            })
            .collect();
        let slice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-abcde"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
        }))
        .expect("slice");
        index.upsert_slice(&slice);
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "DNS index, 1,000 Services + 10,000 endpoints: {} KiB live",
        bytes / 1024
    );
    assert_eq!(index.service_count(), 1000);
    assert!(bytes < 8 * 1024 * 1024, "{bytes} bytes");
    drop(index);

    // The shape of `tests/benches/cluster_dns.rs` (measured in the same
    // test: the counter is global): 1,000 ClusterIP Services, 90 of them
    // with a slice of 100 endpoints, and 100 headless Services with 10
    // named endpoints each (StatefulSets).
    let before = LIVE.load(Ordering::Relaxed);
    let mut index = DnsIndex::new();
    let mut pod = 0u32;
    let mut next_ip = || {
        pod += 1;
        format!("10.244.{}.{}", pod / 250, 1 + pod % 250)
    };
    for s in 0..1100u32 {
        let headless = s >= 1000;
        let name = if headless {
            format!("db-{}", s - 1000)
        } else {
            format!("svc-{s}")
        };
        let ns = format!("bench-{}", s % 10);
        let ip = format!("10.96.{}.{}", 1 + s / 250, 1 + s % 250);
        let cluster_ip = if headless { "None".to_string() } else { ip };
        let service = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"clusterIP": cluster_ip, "clusterIPs": [cluster_ip],
                     "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                               {"name": "metrics", "port": 9090, "protocol": "TCP"}]},
        }))
        .expect("service");
        index.upsert_service(&service);
        let endpoints: Vec<_> = if headless {
            (0..10)
                .map(|k| {
                    json!({"addresses": [next_ip()], "hostname": format!("{name}-{k}"),
                                "conditions": {"ready": true}})
                })
                .collect()
        } else if s < 90 {
            (0..100)
                .map(|_| json!({"addresses": [next_ip()], "conditions": {"ready": true}}))
                .collect()
        } else {
            continue;
        };
        let slice = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": format!("{name}-bench"), "namespace": ns,
                         "labels": {"kubernetes.io/service-name": name}},
            "addressType": "IPv4", "endpoints": endpoints,
        }))
        .expect("slice");
        index.upsert_slice(&slice);
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    eprintln!(
        "DNS index, the cluster_dns bench's 1,100 Services + 10,000 endpoints: {} KiB live",
        bytes / 1024
    );
    assert_eq!(index.service_count(), 1100);
    assert!(bytes < 8 * 1024 * 1024, "{bytes} bytes");
}
