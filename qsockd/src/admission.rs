//! Admission control: what each device's streams reserve in all and per
//! user, and the refusal of a stream that would take more than the
//! device's reservable share or its user's quota.
//!
//! The figures are the daemon's own ledger, kept from the numbers of each
//! request, so that a decision costs no netlink round trip: qsockd creates
//! and removes every class it counts.

use std::collections::HashMap;

use qsock::daemon::classes::Reservation;
use qsock::Rate;

/// A device's reservations.
#[derive(Debug)]
pub struct Ledger {
    device: String,
    link_rate: Rate,
    /// What may be reserved in all: `reservable` of the link rate.
    reservable: u64,
    default_quota: Option<Rate>,
    quotas: HashMap<u32, Rate>,
    held_by: HashMap<u32, u64>,
    held: u64,
}

/// How refusals name the settings that would grant more.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The setting of the device's reservable share.
    pub reservable: String,
    /// The setting of a user's quota.
    pub quota: String,
    /// The setting of the quota of users without their own.
    pub default_quota: String,
}

impl Ledger {
    /// An empty ledger of `device`, whose link of `link_rate` may be
    /// reserved up to `share`.
    pub fn new(
        device: &str,
        link_rate: Rate,
        share: f64,
        default_quota: Option<Rate>,
        quotas: HashMap<u32, Rate>,
    ) -> Ledger {
        Ledger {
            device: device.to_owned(),
            link_rate,
            reservable: (link_rate.bits_per_second() as f64 * share) as u64,
            default_quota,
            quotas,
            held_by: HashMap::new(),
            held: 0,
        }
    }

    /// What user `uid` may reserve in all on this device.
    fn quota_of(&self, uid: u32) -> Option<Rate> {
        self.quotas.get(&uid).copied().or(self.default_quota)
    }

    /// Admits a reservation of `asked` for user `uid`, in place of
    /// `replacing` (a stream's reservation before a change); the refusal says
    /// what was asked, what is left and which setting grants more.
    pub fn admit(
        &self,
        uid: u32,
        user: &str,
        asked: Reservation,
        replacing: Reservation,
        settings: &Settings,
    ) -> Result<(), String> {
        let asked = asked.rate.bits_per_second();
        let replacing = replacing.rate.bits_per_second();
        if asked <= replacing {
            return Ok(());
        }
        let more = asked - replacing;
        let rate = Rate::from_bits_per_second;
        let device_left = self.reservable.saturating_sub(self.held);
        if more > device_left {
            return Err(format!(
                "cannot admit a stream reserving {} on {}: applications may reserve {} of its \
                 {} link, streams hold {} and {} is left; close other streams, lengthen the \
                 period or allow a larger window loss, or raise {}",
                rate(asked),
                self.device,
                rate(self.reservable),
                self.link_rate,
                rate(self.held),
                rate(device_left),
                settings.reservable,
            ));
        }
        if let Some(quota) = self.quota_of(uid) {
            let held = self.held_by.get(&uid).copied().unwrap_or(0);
            let user_left = quota.bits_per_second().saturating_sub(held);
            if more > user_left {
                let setting = if self.quotas.contains_key(&uid) {
                    settings.quota.replace("USER", user)
                } else {
                    settings.default_quota.clone()
                };
                return Err(format!(
                    "cannot admit a stream reserving {} on {} for user {user}: the user's quota \
                     there is {quota}, the user's streams hold {} and {} is left; close some of \
                     them, or raise {setting}",
                    rate(asked),
                    self.device,
                    rate(held),
                    rate(user_left),
                ));
            }
        }
        Ok(())
    }

    /// Records `reservation` as held by user `uid`.
    pub fn hold(&mut self, uid: u32, reservation: Reservation) {
        let bits = reservation.rate.bits_per_second();
        *self.held_by.entry(uid).or_default() += bits;
        self.held = self.held.saturating_add(bits);
    }

    /// Lets go of `reservation` held by user `uid`.
    pub fn release(&mut self, uid: u32, reservation: Reservation) {
        let bits = reservation.rate.bits_per_second();
        if let Some(held) = self.held_by.get_mut(&uid) {
            *held = held.saturating_sub(bits);
            if *held == 0 {
                self.held_by.remove(&uid);
            }
        }
        self.held = self.held.saturating_sub(bits);
    }

    /// What is held in all.
    pub fn held(&self) -> Rate {
        Rate::from_bits_per_second(self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mbit(n: u64) -> Reservation {
        Reservation {
            rate: Rate::from_bits_per_second(n * 1_000_000),
        }
    }

    fn settings() -> Settings {
        Settings {
            reservable: "SHARE".into(),
            quota: "QUOTA-USER".into(),
            default_quota: "DEFAULT".into(),
        }
    }

    #[test]
    fn the_share_bounds_every_user_together() {
        let mut ledger = Ledger::new("eth0", mbit(100).rate, 0.5, None, HashMap::new());
        ledger.hold(1000, mbit(30));
        assert!(ledger
            .admit(1001, "bob", mbit(20), Reservation::NONE, &settings())
            .is_ok());
        let refusal = ledger
            .admit(1001, "bob", mbit(21), Reservation::NONE, &settings())
            .expect_err("over the share");
        for needle in ["21mbit", "50mbit", "30mbit", "20mbit", "SHARE"] {
            assert!(refusal.contains(needle), "{needle} in {refusal}");
        }
        ledger.release(1000, mbit(30));
        assert_eq!(ledger.held().bits_per_second(), 0);
    }

    #[test]
    fn a_quota_bounds_its_user_and_a_change_counts_once() {
        let quotas = HashMap::from([(1000, mbit(10).rate)]);
        let mut ledger = Ledger::new("eth0", mbit(100).rate, 0.8, Some(mbit(5).rate), quotas);
        ledger.hold(1000, mbit(8));
        let refusal = ledger
            .admit(1000, "alice", mbit(3), Reservation::NONE, &settings())
            .expect_err("over alice's quota");
        assert!(refusal.contains("QUOTA-alice"), "{refusal}");
        assert!(ledger
            .admit(1000, "alice", mbit(10), mbit(8), &settings())
            .is_ok());
        let refusal = ledger
            .admit(1001, "bob", mbit(6), Reservation::NONE, &settings())
            .expect_err("over the default quota");
        assert!(refusal.contains("DEFAULT"), "{refusal}");
    }
}
