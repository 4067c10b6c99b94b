//! Named consumer checkpoints.

use disputes_store::{EventStore, StoreError};

use crate::support::{appended, open, request};

#[test]
fn checkpoints_start_at_zero_move_both_ways_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        assert_eq!(store.checkpoint("publisher").unwrap(), 0);
        appended(store.append(request("d-1", 0, None, 5)));
        store.set_checkpoint("publisher", 3).unwrap();
        store.set_checkpoint("projections", 5).unwrap();
        assert_eq!(store.checkpoint("publisher").unwrap(), 3);
        store.set_checkpoint("projections", 1).unwrap(); // a rebuild may go back
        assert_eq!(store.checkpoint("projections").unwrap(), 1);
        assert!(
            matches!(
                store.set_checkpoint("publisher", 6),
                Err(StoreError::Invalid(_))
            ),
            "beyond the head"
        );
        assert!(matches!(
            store.set_checkpoint("", 1),
            Err(StoreError::Invalid(_))
        ));
        assert_eq!(store.checkpoint("publisher").unwrap(), 3);
    }
    let store = open(dir.path());
    assert_eq!(store.checkpoint("publisher").unwrap(), 3);
    assert_eq!(store.checkpoint("projections").unwrap(), 1);
}
