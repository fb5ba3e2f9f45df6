//! `GradNormMonitor`: events on scripted control blocks (every kind, at its boundaries),
//! statistics against a hand computation, and the non-blocking path on a real adapter.

mod common;
use common::*;
use std::sync::{Arc, Mutex};
use wgpu_optim::*;

/// A control block after a step that was not skipped.
fn reading(step: u32, grad_norm: f32, skipped_steps: u32) -> Control {
    Control {
        step,
        grad_norm,
        skipped_steps,
        ..Control::INITIAL
    }
}

/// A control block after a skipped step (found_inf, norm inf).
fn skipped(step: u32, skipped_steps: u32) -> Control {
    Control {
        found_inf: 1,
        grad_norm: f32::INFINITY,
        ..reading(step, 0.0, skipped_steps)
    }
}

fn monitor(config: MonitorConfig) -> GradNormMonitor {
    GradNormMonitor::new(config).unwrap()
}

/// Feeds `norms` (finite, one step each) and returns the 1-based readings that raised an
/// event, with the events.
fn feed(monitor: &mut GradNormMonitor, norms: &[f32]) -> Vec<(usize, NormEvent)> {
    let mut out = Vec::new();
    for (i, &norm) in norms.iter().enumerate() {
        for event in monitor.observe(&reading(i as u32 + 1, norm, 0)) {
            out.push((i + 1, event));
        }
    }
    out
}

#[test]
fn vanishing_after_n_readings_strictly_below() {
    // Threshold 0.5 is exact in f32 and f64: a reading of exactly 0.5 is not below it and
    // ends the run.
    let config = MonitorConfig::default()
        .with_vanishing_threshold(0.5)
        .with_vanishing_readings(3)
        .with_exploding_factor(1e6);
    let mut m = monitor(config);
    let norms = [
        0.25, 0.25, 0.5, 0.25, 0.25, 0.25, 0.125, 1.0, 0.25, 0.25, 0.25,
    ];
    let events = feed(&mut m, &norms);
    // Runs: readings 1-2 (2 long, ended by the 0.5), 4-7 (raises at 6, once), 9-11 (at 11).
    let at: Vec<usize> = events.iter().map(|(i, _)| *i).collect();
    assert_eq!(at, [6, 11]);
    assert_eq!(
        events[0].1,
        NormEvent::Vanishing {
            step: 6,
            grad_norm: 0.25,
            threshold: 0.5,
            readings: 3
        }
    );
    let line = events[0].1.to_string();
    assert!(
        line.contains("step 6") && line.contains("vanishing"),
        "{line}"
    );

    // One reading is enough with vanishing_readings 1; a skipped step ends a run.
    let mut m = monitor(
        MonitorConfig::default()
            .with_vanishing_threshold(0.5)
            .with_vanishing_readings(2),
    );
    assert!(m.observe(&reading(1, 0.25, 0)).is_empty());
    m.observe(&skipped(1, 1));
    let events = m.observe(&reading(2, 0.25, 1));
    assert!(events.is_empty(), "{events:?}");
    assert!(matches!(
        m.observe(&reading(3, 0.0, 1))[..],
        [NormEvent::Vanishing { readings: 2, .. }]
    ));
}

/// The bias-corrected moving average of `norms`, term by term:
/// sum_i (1 - d) d^(t - i) x_i / (1 - d^t), Adam's bias correction of its first moment.
fn hand_average(norms: &[f32], decay: f64) -> f64 {
    let t = norms.len() as i32;
    let sum: f64 = norms
        .iter()
        .enumerate()
        .map(|(i, &x)| (1.0 - decay) * decay.powi(t - 1 - i as i32) * f64::from(x))
        .sum();
    sum / (1.0 - decay.powi(t))
}

#[test]
fn exploding_compares_with_the_average_before_the_reading() {
    let decay = 0.5;
    let config = MonitorConfig::default()
        .with_decay(decay)
        .with_exploding_factor(2.0)
        .with_warmup_readings(3)
        .with_vanishing_threshold(0.0);
    let mut m = monitor(config);
    // A spike during the warm-up (reading 2) raises nothing.
    let events = feed(&mut m, &[1.0, 50.0, 1.0]);
    assert!(events.is_empty(), "{events:?}");
    // The first reading after the warm-up can fire: warm-up 3, the fourth reading; with
    // warm-up 4 it cannot.
    for (warmup, fired_at) in [(3, vec![4]), (4, vec![])] {
        let mut m = monitor(
            MonitorConfig::default()
                .with_exploding_factor(2.0)
                .with_warmup_readings(warmup),
        );
        let at: Vec<usize> = feed(&mut m, &[1.0, 1.0, 1.0, 100.0])
            .iter()
            .map(|(i, _)| *i)
            .collect();
        assert_eq!(at, fired_at, "warm-up {warmup}");
    }

    let mut m = monitor(
        MonitorConfig::default()
            .with_decay(decay)
            .with_exploding_factor(2.0)
            .with_warmup_readings(3),
    );
    // After three readings of 1 the average is exactly 1 (0.875 / 0.875). A reading of exactly
    // 2 = factor * average is not above it; 100 is, and is compared with the average
    // *before* it.
    feed(&mut m, &[1.0, 1.0, 1.0]);
    assert_eq!(m.stats().average, Some(1.0));
    assert!(m.observe(&reading(4, 2.0, 0)).is_empty());
    let before = m.stats().average.unwrap();
    assert_eq!(before, hand_average(&[1.0, 1.0, 1.0, 2.0], decay));
    let events = m.observe(&reading(5, 100.0, 0));
    assert_eq!(
        events,
        [NormEvent::Exploding {
            step: 5,
            grad_norm: 100.0,
            average: before,
            factor: 2.0
        }]
    );
    assert!(events[0].to_string().contains("exploding"));
    // Then it is folded in: the bar rises with a lasting change of scale.
    let after = m.stats().average.unwrap();
    assert_eq!(after, hand_average(&[1.0, 1.0, 1.0, 2.0, 100.0], decay));
    assert!(after > 2.0 * before);
}

#[test]
fn non_finite_reports_the_steps_skipped() {
    let mut m = monitor(MonitorConfig::default().with_vanishing_threshold(0.0));
    assert!(m.observe(&reading(1, 1.0, 0)).is_empty());
    // Two steps skipped between readings, this one's own step fine.
    assert_eq!(
        m.observe(&reading(2, 1.0, 2)),
        [NormEvent::NonFinite {
            step: 2,
            grad_norm: 1.0,
            skipped: 2,
            total_skipped: 2
        }]
    );
    // This reading's step skipped: found_inf, one more.
    let events = m.observe(&skipped(2, 3));
    assert!(matches!(
        events[..],
        [NormEvent::NonFinite {
            skipped: 1,
            total_skipped: 3,
            ..
        }]
    ));
    assert!(events[0].to_string().contains("1 step(s) skipped"));
    // No growth, no event; a count that went down (a restored snapshot) is the new baseline.
    assert!(m.observe(&reading(3, 1.0, 3)).is_empty());
    assert!(m.observe(&reading(2, 1.0, 1)).is_empty());
    assert!(matches!(
        m.observe(&reading(3, 1.0, 2))[..],
        [NormEvent::NonFinite {
            skipped: 1,
            total_skipped: 4,
            ..
        }]
    ));
    // found_inf alone (its count not grown: a halted optimizer) still reports.
    assert!(matches!(
        m.observe(&skipped(3, 2))[..],
        [NormEvent::NonFinite { skipped: 0, .. }]
    ));
    let stats = m.stats();
    assert_eq!(stats.readings, 7);
    assert_eq!(stats.skipped_steps, 4);
    // The skipped readings' inf norms entered no statistic.
    assert_eq!(stats.finite_readings, 5);
    assert_eq!(stats.max, Some(1.0));
}

#[test]
fn statistics_match_a_hand_computation() {
    let decay = 0.9;
    let mut m = monitor(
        MonitorConfig::default()
            .with_decay(decay)
            .with_vanishing_threshold(0.0),
    );
    assert_eq!(m.stats().average, None);
    let mut rng = Rng::new(5);
    let norms: Vec<f32> = (0..50).map(|_| rng.uniform().abs() * 3.0 + 0.1).collect();
    for (i, &norm) in norms.iter().enumerate() {
        m.observe(&reading(i as u32 + 1, norm, 0));
        // A NaN norm (not skipped) is left out too.
        m.observe(&reading(i as u32 + 1, f32::NAN, 0));
        let seen = &norms[..=i];
        let stats = m.stats();
        let average = stats.average.unwrap();
        let expected = hand_average(seen, decay);
        assert!(
            (average - expected).abs() <= 1e-12 * expected,
            "reading {i}: {average} vs {expected}"
        );
        assert_eq!(stats.min, seen.iter().copied().reduce(f32::min));
        assert_eq!(stats.max, seen.iter().copied().reduce(f32::max));
        assert_eq!(stats.readings, 2 * (i as u64 + 1));
        assert_eq!(stats.finite_readings, i as u64 + 1);
    }
    // Bias correction: the first average is the first reading, not (1 - decay) times it.
    let mut m = monitor(MonitorConfig::default().with_decay(decay));
    m.observe(&reading(1, 2.0, 0));
    assert!((m.stats().average.unwrap() - 2.0).abs() < 1e-15);
    // Decay 0: the average is the last reading.
    let mut m = monitor(MonitorConfig::default().with_decay(0.0));
    feed(&mut m, &[1.0, 7.0, 3.0]);
    assert_eq!(m.stats().average, Some(3.0));
}

#[test]
fn the_callback_sees_every_event() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let mut m = monitor(
        MonitorConfig::default()
            .with_vanishing_threshold(0.5)
            .with_vanishing_readings(1),
    )
    .on_event(move |event| sink.lock().unwrap().push(event.clone()));
    let mut returned = Vec::new();
    returned.extend(m.observe(&reading(1, 0.25, 0)));
    returned.extend(m.observe(&skipped(1, 1)));
    returned.extend(m.observe(&reading(2, 1.0, 1)));
    assert_eq!(returned.len(), 2);
    assert_eq!(*seen.lock().unwrap(), returned);
}

#[test]
fn refuses_bad_configurations() {
    let bad = [
        MonitorConfig::default().with_decay(1.0),
        MonitorConfig::default().with_decay(-0.1),
        MonitorConfig::default().with_decay(f64::NAN),
        MonitorConfig::default().with_vanishing_threshold(-1.0),
        MonitorConfig::default().with_vanishing_threshold(f64::INFINITY),
        MonitorConfig::default().with_exploding_factor(f64::NAN),
        MonitorConfig::default().with_exploding_factor(-2.0),
        MonitorConfig::default().with_vanishing_readings(0),
    ];
    for config in bad {
        assert!(
            matches!(
                GradNormMonitor::new(config.clone()),
                Err(Error::InvalidHyperparameter { .. })
            ),
            "{config:?}"
        );
    }
    GradNormMonitor::new(MonitorConfig::default().with_decay(0.0)).unwrap();
}

/// The monitor and the reader it polls never wait for the device: no blocking poll, no
/// blocking future, anywhere in their source.
#[test]
fn the_polling_path_has_no_wait() {
    let sources = [
        (
            "src/train/monitor.rs",
            include_str!("../src/train/monitor.rs"),
        ),
        (
            "src/train/readback.rs",
            include_str!("../src/train/readback.rs"),
        ),
    ];
    for (path, source) in sources {
        for forbidden in ["PollType::Wait", "wait_indefinitely", "block_on"] {
            assert!(!source.contains(forbidden), "{path} contains {forbidden}");
        }
    }
    // The monitor reads through try_read, and the reader polls with PollType::Poll.
    assert!(sources[0].1.contains("reader.try_read()"));
    assert!(sources[1].1.contains("wgpu::PollType::Poll)"));
}

#[test]
fn polls_deliver_every_reading_in_order_on_the_device() {
    let ctx = context();
    let len = 1000;
    let mut rng = Rng::new(9);
    let base = rng.gradient(len);
    let param = ctx.upload_f32("param", &rng.vector(len));
    let grad = ctx.upload_f32("grad", &base);
    let mut optimizer = SgdConfig::default()
        .with_lr(0.01)
        .build(ctx, &[Param::whole(&param, &grad)])
        .unwrap();
    optimizer
        .set_grad_processing(Some(GradConfig::default()))
        .unwrap();
    // Factor 0 and no warm-up: every finite reading after the first is "exploding", so the
    // events trace the readings; skipped steps add NonFinite ones.
    let config = MonitorConfig::default()
        .with_exploding_factor(0.0)
        .with_warmup_readings(0)
        .with_vanishing_threshold(0.0);
    let mut monitor = GradNormMonitor::new(config).unwrap();
    let mut reader = ControlReader::new(ctx, 8);

    let iterations = 6;
    let skipped_at = [3, 5];
    let mut norms = Vec::new();
    let mut events = Vec::new();
    for k in 1..=iterations {
        let scale = k as f32;
        let mut values: Vec<f32> = base.iter().map(|g| g * scale).collect();
        if skipped_at.contains(&k) {
            values[17] = f32::INFINITY;
        } else {
            norms.push(
                values
                    .iter()
                    .map(|&g| f64::from(g).powi(2))
                    .sum::<f64>()
                    .sqrt(),
            );
        }
        ctx.write_f32(&BufferRange::whole(&grad), &values).unwrap();
        let mut encoder = ctx.device().create_command_encoder(&Default::default());
        optimizer.step(&mut encoder);
        assert!(reader.record(&mut encoder, &optimizer).unwrap());
        ctx.queue().submit([encoder.finish()]);
        // Right after the submit: whatever has arrived (possibly nothing), nothing lost.
        events.extend(monitor.poll(&mut reader).unwrap());
        assert_eq!(
            monitor.stats().readings + reader.in_flight() as u64,
            k as u64
        );
    }
    // The test may wait for the device; the monitor never does.
    ctx.device()
        .poll(wgpu::PollType::wait_indefinitely())
        .unwrap();
    for _ in 0..100 {
        if reader.in_flight() == 0 {
            break;
        }
        events.extend(monitor.poll(&mut reader).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    events.extend(monitor.poll(&mut reader).unwrap());
    assert_eq!(reader.in_flight(), 0);

    let stats = monitor.stats();
    assert_eq!(stats.readings, iterations as u64);
    assert_eq!(stats.finite_readings, norms.len() as u64);
    assert_eq!(stats.skipped_steps, skipped_at.len() as u64);
    // The control's step does not advance on a skipped step: readings 1..6 are at steps
    // 1, 2, 2 (skipped), 3, 3 (skipped), 4.
    let trace: Vec<(&str, u32)> = events
        .iter()
        .map(|e| match e {
            NormEvent::Exploding { step, .. } => ("reading", *step),
            NormEvent::NonFinite { step, skipped, .. } => {
                assert_eq!(*skipped, 1);
                ("skipped", *step)
            }
            NormEvent::Vanishing { .. } => panic!("{e}"),
        })
        .collect();
    assert_eq!(
        trace,
        [
            ("reading", 2),
            ("skipped", 2),
            ("reading", 3),
            ("skipped", 3),
            ("reading", 4)
        ]
    );
    assert_eq!(monitor.last_reading().map(|c| c.step), Some(4));
    // The device's norms: the first finite reading is the smallest, the last the largest.
    let close = |device: f32, host: f64| (f64::from(device) - host).abs() <= 1e-5 * host;
    assert!(
        close(stats.min.unwrap(), norms[0]),
        "{stats:?} vs {norms:?}"
    );
    assert!(
        close(stats.max.unwrap(), *norms.last().unwrap()),
        "{stats:?}"
    );
}

/// Issue 25, finding 19: finite gradients whose sum of squares overflows f32 give an infinite
/// norm without skipping the step (clipped by 0, it applied no gradient): a `NonFinite`
/// event with nothing skipped, and the reading stays out of the statistics. On the device:
/// gradients of 1e30 under a max_norm clip.
#[test]
fn an_overflowed_norm_of_finite_gradients_raises_an_event() {
    let mut m = monitor(MonitorConfig::default());
    assert!(m.observe(&reading(1, 2.0, 0)).is_empty());
    let events = m.observe(&reading(2, f32::INFINITY, 0));
    assert_eq!(
        events,
        [NormEvent::NonFinite {
            step: 2,
            grad_norm: f32::INFINITY,
            skipped: 0,
            total_skipped: 0,
        }]
    );
    assert_eq!(m.stats().finite_readings, 1);

    let ctx = context();
    let param = ctx.upload_f32("param", &[1.0; 64]);
    let grad = ctx.upload_f32("grad", &[1e30; 64]);
    let mut optimizer = SgdConfig::default()
        .with_lr(0.01)
        .build(ctx, &[Param::whole(&param, &grad)])
        .unwrap();
    optimizer
        .set_grad_processing(Some(GradConfig::default().with_max_norm(1.0)))
        .unwrap();
    let mut encoder = ctx.device().create_command_encoder(&Default::default());
    optimizer.step(&mut encoder);
    ctx.queue().submit([encoder.finish()]);
    let control = optimizer.read_control().unwrap();
    assert_eq!((control.found_inf, control.skipped_steps), (0, 0));
    assert_eq!(control.grad_norm, f32::INFINITY);
    let mut device = monitor(MonitorConfig::default());
    assert!(matches!(
        device.observe(&control)[..],
        [NormEvent::NonFinite { skipped: 0, .. }]
    ));
}
