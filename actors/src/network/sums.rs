//! Per-job summaries of the records each partner may see, kept up to date as records are
//! stored: anti-entropy with a partner then costs one hash per job in sync, and records move
//! only for the jobs that differ — the cost follows the difference, not the store's size.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use consort_protocol::PartyName;
use consort_protocol::audience::Audience;
use consort_protocol::jobs::RecordKey;
use consort_protocol::peer::{JobSum, Record, record_hash};

/// The job a record is summed under (empty: no job).
pub(crate) fn bucket(key: &str) -> String {
    RecordKey::parse(key)
        .map(|k| k.job().as_str().to_owned())
        .unwrap_or_default()
}

/// Most distinct audiences summed as a whole per job; records with further audiences are
/// summed per party (a job's records normally share one audience: its parties).
const MAX_GROUPS: usize = 8;

#[derive(Debug, Default)]
struct Entry {
    /// Records visible to every partner (no audience).
    all: u64,
    /// Records addressed to some parties, per audience: one XOR per record, not one per
    /// party it names (at 50 parties that was 50 map updates for every record stored).
    groups: HashMap<Audience, u64>,
    /// Records addressed to some parties, per party, once `groups` is full.
    by: HashMap<PartyName, u64>,
    /// When a record of the job was last stored here.
    changed: Option<Instant>,
    /// The sum per party, worked out from the above when first asked after a change (a
    /// settled job's sums are read in every anti-entropy round, for every partner).
    per_party: std::cell::OnceCell<HashMap<PartyName, u64>>,
}

/// XOR sums of held records, per job and per party that may see them.
#[derive(Debug, Default)]
pub(crate) struct Sums {
    jobs: BTreeMap<String, Entry>,
}

impl Sums {
    /// Adds a held version to `e`, or takes it out (XOR: the same operation).
    fn toggle(e: &mut Entry, r: &Record) {
        let h = record_hash(r.origin.as_str(), &r.key, r.version);
        if r.audience.is_empty() {
            e.all ^= h;
        } else if let Some(g) = e.groups.get_mut(&r.audience) {
            *g ^= h;
        } else if e.groups.len() < MAX_GROUPS {
            // Groups are never removed, so a record is taken out where it was put in.
            e.groups.insert(r.audience.clone(), h);
        } else {
            for p in &r.audience {
                *e.by.entry(p.clone()).or_default() ^= h;
            }
        }
    }

    /// `new` replaced `old` (if any) in the store.
    pub(crate) fn account(&mut self, old: Option<&Record>, new: &Record) {
        let e = self.jobs.entry(bucket(&new.key)).or_default();
        e.per_party.take();
        // A record keeps its key, hence its job, across versions.
        if let Some(old) = old {
            Self::toggle(e, old);
        }
        Self::toggle(e, new);
        e.changed = Some(Instant::now());
    }

    fn sum_for(e: &Entry, party: &PartyName) -> u64 {
        let per_party = e.per_party.get_or_init(|| {
            let mut m = e.by.clone();
            for (audience, h) in &e.groups {
                for p in audience {
                    *m.entry(p.clone()).or_default() ^= h;
                }
            }
            m
        });
        e.all ^ per_party.get(party).copied().unwrap_or(0)
    }

    /// Our sums for `party` of the jobs after `after`, at most `limit` of them, and the job the
    /// page ends at (`None`: the page runs to the last job). With `settle`, a job changed
    /// here more recently than that is sent as 0, "changing now, leave it out": a running
    /// job's records are on their way by push, and comparing them mid-flight would only ship
    /// the whole job back and forth.
    pub(crate) fn page(
        &self,
        party: &PartyName,
        after: Option<&str>,
        limit: usize,
        settle: Option<Duration>,
    ) -> (Vec<JobSum>, Option<String>) {
        let mut out = Vec::new();
        let range = match after {
            Some(a) => self
                .jobs
                .range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => self.jobs.range::<str, _>(..),
        };
        for (job, e) in range {
            let hash = Self::sum_for(e, party);
            if hash == 0 {
                continue;
            }
            if out.len() == limit {
                let until = out.last().map(|s: &JobSum| s.job.clone());
                return (out, until);
            }
            let changing = settle.is_some_and(|d| e.changed.is_some_and(|at| at.elapsed() < d));
            out.push(JobSum {
                job: job.clone(),
                hash: if changing { 0 } else { hash },
            });
        }
        (out, None)
    }

    /// The jobs in `(after, until]` where what we hold that `party` may see differs from
    /// `theirs` (its sums for that range): the jobs whose records it should get from us.
    pub(crate) fn differing(
        &self,
        party: &PartyName,
        theirs: &[JobSum],
        after: Option<&str>,
        until: Option<&str>,
    ) -> Vec<String> {
        // A range from a partner: an inverted one is empty (BTreeMap::range would panic).
        if let (Some(a), Some(u)) = (after, until)
            && a >= u
        {
            return Vec::new();
        }
        let theirs: HashMap<&str, u64> = theirs.iter().map(|s| (s.job.as_str(), s.hash)).collect();
        let lower = match after {
            Some(a) => std::ops::Bound::Excluded(a),
            None => std::ops::Bound::Unbounded,
        };
        let upper = match until {
            Some(u) => std::ops::Bound::Included(u),
            None => std::ops::Bound::Unbounded,
        };
        self.jobs
            .range::<str, _>((lower, upper))
            .filter_map(|(job, e)| {
                let mine = Self::sum_for(e, party);
                let changing = theirs.get(job.as_str()) == Some(&0);
                (mine != 0 && !changing && theirs.get(job.as_str()) != Some(&mine))
                    .then(|| job.clone())
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(origin: &str, key: &str, version: u64, audience: &[&str]) -> Record {
        Record {
            origin: PartyName::new(origin).expect("name"),
            key: key.into(),
            version,
            written_at_ms: 0,
            value: vec![],
            audience: audience
                .iter()
                .map(|p| PartyName::new(p).expect("name"))
                .collect(),
            signature: vec![],
        }
    }

    #[test]
    fn sums_agree_when_in_sync_and_name_only_the_jobs_that_differ() {
        let (a, b, c) = (
            PartyName::new("a").expect("name"),
            PartyName::new("b").expect("name"),
            PartyName::new("c").expect("name"),
        );
        let j1 = "task/j00000000000000000001/t/1/guest";
        let (mut at_a, mut at_b) = (Sums::default(), Sums::default());
        // Both hold version 2 of a record of job j1 for {a, b}, reached by different paths.
        let v1 = rec("a", j1, 1, &["a", "b"]);
        let v2 = rec("a", j1, 2, &["a", "b"]);
        at_a.account(None, &v1);
        at_a.account(Some(&v1), &v2);
        at_b.account(None, &v2);
        // a also holds a record b may not see: it does not count for b.
        at_a.account(
            None,
            &rec("c", "task/j00000000000000000009/t/1/host", 5, &["a", "c"]),
        );
        let (page, until) = at_b.page(&a, None, 10, None);
        assert_eq!(until, None);
        assert!(at_a.differing(&b, &page, None, None).is_empty());
        // c's copy for c differs (b knows nothing of job j9): only j9 is named.
        let (page_b_for_c, _) = at_b.page(&c, None, 10, None);
        assert_eq!(
            at_a.differing(&c, &page_b_for_c, None, None),
            vec![bucket("task/j00000000000000000009/t/1/host")]
        );
        // A newer version at a makes j1 differ for b.
        let v3 = rec("a", j1, 3, &["a", "b"]);
        at_a.account(Some(&v2), &v3);
        assert_eq!(at_a.differing(&b, &page, None, None), vec![bucket(j1)]);
    }

    #[test]
    fn sums_by_audience_equal_sums_by_party_past_the_group_limit() {
        let names: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
        let job = "task/j00000000000000000001/t{}/1/host";
        let mut sums = Sums::default();
        let mut held: Vec<Record> = Vec::new();
        // 12 audiences (more than MAX_GROUPS) in one job, each record then replaced once.
        for i in 0..names.len() {
            let audience: Vec<&str> = names[..=i].iter().map(String::as_str).collect();
            let key = job.replace("{}", &i.to_string());
            let r = rec(&names[i], &key, 1, &audience);
            sums.account(None, &r);
            held.push(r);
        }
        for r in held.iter_mut() {
            let mut newer = r.clone();
            newer.version = 2;
            sums.account(Some(r), &newer);
            *r = newer;
        }
        let e = &sums.jobs[&bucket(job)];
        assert_eq!(e.groups.len(), MAX_GROUPS);
        assert!(!e.by.is_empty(), "the later audiences are summed per party");
        for p in &names {
            let party = PartyName::new(p).expect("name");
            let expected = held
                .iter()
                .filter(|r| r.audience.contains(&party))
                .fold(0, |s, r| {
                    s ^ record_hash(r.origin.as_str(), &r.key, r.version)
                });
            assert_eq!(Sums::sum_for(e, &party), expected, "{p}");
        }
    }

    #[test]
    fn a_job_changing_at_the_asker_is_left_out_of_a_settling_round_only() {
        let (a, b) = (
            PartyName::new("a").expect("name"),
            PartyName::new("b").expect("name"),
        );
        let j = "task/j00000000000000000001/t/1/guest";
        let (mut at_a, mut at_b) = (Sums::default(), Sums::default());
        at_a.account(None, &rec("a", j, 1, &["a", "b"]));
        at_b.account(None, &rec("a", j, 2, &["a", "b"]));
        // a just stored its version: in a settling round it says "changing", b ships nothing.
        let (page, _) = at_a.page(&b, None, 10, Some(Duration::from_secs(60)));
        assert_eq!(page[0].hash, 0);
        assert!(at_b.differing(&a, &page, None, None).is_empty());
        // A full round (a partner back from away) compares it, and b has a newer version.
        let (page, _) = at_a.page(&b, None, 10, None);
        assert_ne!(page[0].hash, 0);
        assert_eq!(at_b.differing(&a, &page, None, None), vec![bucket(j)]);
        // Once settled, a settling round compares it too.
        let (page, _) = at_a.page(&b, None, 10, Some(Duration::ZERO));
        assert_eq!(at_b.differing(&a, &page, None, None), vec![bucket(j)]);
    }

    #[test]
    fn a_partners_inverted_or_empty_range_names_nothing_and_does_not_panic() {
        let mut s = Sums::default();
        s.account(None, &rec("a", "decision/j00000000000000000005", 1, &[]));
        let p = PartyName::new("b").expect("name");
        assert!(s.differing(&p, &[], Some("z"), Some("a")).is_empty());
        assert!(s.differing(&p, &[], Some("k"), Some("k")).is_empty());
        assert_eq!(s.differing(&p, &[], None, None).len(), 1);
    }

    #[test]
    fn pages_end_where_the_next_begins() {
        let mut s = Sums::default();
        for i in 0..5 {
            s.account(None, &rec("a", &format!("decision/j{i:020x}"), 1, &[]));
        }
        let p = PartyName::new("b").expect("name");
        let (first, until) = s.page(&p, None, 2, None);
        assert_eq!(first.len(), 2);
        let (second, until2) = s.page(&p, until.as_deref(), 2, None);
        assert_eq!(second.len(), 2);
        let (third, until3) = s.page(&p, until2.as_deref(), 2, None);
        assert_eq!((third.len(), until3), (1, None));
    }
}
