//! Unit tests of the CronJob controller.
