//! One BMC's behaviour as a pure state machine over a virtual clock (`now` = time since the
//! fleet started). Nothing here sleeps or spawns: transitions are timestamps that reads
//! resolve lazily, so 10,000 idle BMCs cost only their memory.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

/// ComputerSystem.PowerState.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PowerState {
    On,
    Off,
    PoweringOn,
    PoweringOff,
}

/// ComputerSystem.Reset types this BMC advertises in `ResetType@Redfish.AllowableValues`.
pub const RESET_TYPES: [&str; 6] = [
    "On",
    "ForceOff",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "PowerCycle",
];
/// BootSourceOverrideTarget values advertised and accepted.
pub const BOOT_TARGETS: [&str; 4] = ["None", "Pxe", "Cd", "Hdd"];
/// BootSourceOverrideEnabled values.
pub const BOOT_ENABLED: [&str; 3] = ["Disabled", "Once", "Continuous"];
/// BootSourceOverrideMode values.
pub const BOOT_MODES: [&str; 2] = ["UEFI", "Legacy"];

/// The ComputerSystem.Boot override settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BootOverride {
    pub boot_source_override_target: String,
    pub boot_source_override_enabled: String,
    pub boot_source_override_mode: String,
}

impl Default for BootOverride {
    fn default() -> Self {
        Self {
            boot_source_override_target: "None".to_owned(),
            boot_source_override_enabled: "Disabled".to_owned(),
            boot_source_override_mode: "UEFI".to_owned(),
        }
    }
}

/// A PATCH of the boot override; absent fields keep their value.
#[derive(Clone, Debug, Default)]
pub struct BootPatch {
    pub target: Option<String>,
    pub enabled: Option<String>,
    pub mode: Option<String>,
}

/// A virtual media device: the CD/DVD drive the OS boots from, and a USB stick beside it
/// (where a NoCloud `cidata` seed goes, as on BMCs that offer both).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Device {
    Cd,
    UsbStick,
}

impl Device {
    pub const ALL: [Self; 2] = [Self::Cd, Self::UsbStick];

    /// The VirtualMedia resource's Id.
    pub fn id(self) -> &'static str {
        match self {
            Self::Cd => "Cd",
            Self::UsbStick => "UsbStick",
        }
    }

    pub fn from_id(id: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|d| d.id() == id)
    }
}

/// What is in one virtual media device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Media {
    pub image: Option<String>,
    pub inserted: bool,
    pub write_protected: bool,
}

/// What the simulated host's cloud-init did with the seed on its USB stick at the end of a
/// boot: what it read (for tests to check) and the phone-home it posted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Playback {
    /// The medium's image URL it fetched.
    pub url: String,
    pub seed: Option<SeedRead>,
    pub phone_home: Option<PhoneHomePost>,
    /// The user data asked for a power-off at the end (`power_state: {mode: poweroff}`), and
    /// the OS did it.
    pub powered_off: bool,
    /// Why it stopped short (the seed could not be fetched or read, the post failed).
    pub error: Option<String>,
}

/// The files of a `cidata` seed, as read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SeedRead {
    pub instance_id: Option<String>,
    pub local_hostname: Option<String>,
    pub meta_data: String,
    pub user_data: String,
    pub network_config: Option<String>,
}

/// The phone-home cloud-init posted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhoneHomePost {
    pub url: String,
    /// The host's SSH host key it reported (generated per instance, as a first boot does).
    pub host_key: String,
    /// The address it posted from.
    pub address: String,
    /// The answer's HTTP status; None when no answer came.
    pub status: Option<u16>,
}

/// Something the BMC saw, with the virtual time it happened at (ms since the fleet started).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum Event {
    /// A Reset action; `applied` is false when the power_stuck fault swallowed it.
    #[serde(rename_all = "camelCase")]
    PowerAction {
        at_ms: u64,
        reset_type: String,
        applied: bool,
    },
    /// The system started booting from `source` (Cd, Pxe, Hdd); `image` is what it runs.
    #[serde(rename_all = "camelCase")]
    Boot {
        at_ms: u64,
        source: String,
        image: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    BootOverrideSet {
        at_ms: u64,
        target: String,
        enabled: String,
        mode: String,
    },
    #[serde(rename_all = "camelCase")]
    MediaInserted {
        at_ms: u64,
        device: Device,
        image: String,
    },
    /// InsertMedia refused: the BMC cannot fetch the image.
    #[serde(rename_all = "camelCase")]
    MediaRefused {
        at_ms: u64,
        device: Device,
        image: String,
    },
    /// EjectMedia, also when nothing was inserted (`image` is then null).
    #[serde(rename_all = "camelCase")]
    MediaEjected {
        at_ms: u64,
        device: Device,
        image: Option<String>,
    },
    /// The OS powered the machine off (cloud-init's `power_state`), not a Redfish call.
    #[serde(rename_all = "camelCase")]
    OsPoweredOff { at_ms: u64 },
    #[serde(rename_all = "camelCase")]
    SessionOpened { at_ms: u64, id: u32, user: String },
    #[serde(rename_all = "camelCase")]
    SessionClosed {
        at_ms: u64,
        id: u32,
        reason: SessionEnd,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum SessionEnd {
    LoggedOut,
    Expired,
}

/// Why a BMC refused a request; the HTTP layer maps each to a status and Redfish message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{value:?} is not an allowed value of {property}")]
    NotAllowed {
        property: &'static str,
        value: String,
    },
    #[error("media is already inserted; eject it first")]
    MediaInserted,
    #[error("the session limit ({0}) is reached")]
    SessionLimit(usize),
    #[error("cannot fetch the image {0}: the server is unreachable")]
    ImageUnreachable(String),
}

/// Image servers the simulated BMCs cannot reach: the reserved top-level domain `.invalid`
/// (RFC 6761), so a test asks for an unreachable image by its URL alone.
fn unreachable(image: &str) -> bool {
    url::Url::parse(image)
        .ok()
        .and_then(|u| u.host_str().map(|h| h.ends_with(".invalid")))
        .unwrap_or(false)
}

/// An open session.
#[derive(Clone, Debug)]
pub struct Session {
    pub token: String,
    pub user: String,
    last_used: Duration,
}

#[derive(Clone, Debug)]
struct Boot {
    starts_at: Duration,
    source: String,
    image: Option<String>,
    /// A medium to boot from exists (Cd with media inserted, Pxe, Hdd).
    bootable: bool,
    hangs: bool,
}

/// Timing of a BMC; from the fleet's config.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub power_delay: Duration,
    pub boot_time: Duration,
    pub session_timeout: Duration,
    pub session_limit: usize,
}

/// One BMC's mutable state.
#[derive(Debug)]
pub struct Bmc {
    timing: Timing,
    /// Power is heading to (true: On) and gets there at `settles_at`.
    power_on: bool,
    settles_at: Duration,
    boot: Option<Boot>,
    boot_override: BootOverride,
    /// Bumped on every boot override change; the ComputerSystem ETag.
    generation: u64,
    media: Media,
    usb_stick: Media,
    /// When the boot whose seed was last played started (cloud-init runs once per boot).
    seed_played_for: Option<Duration>,
    /// What the host's cloud-init last did with a seed.
    playback: Option<Playback>,
    /// The OS on the disk: what an Hdd boot runs. Set when a Cd boot reaches OSRunning.
    current_image: Option<String>,
    sessions: BTreeMap<u32, Session>,
    next_session: u32,
    /// Task monitors: id -> completion time.
    tasks: BTreeMap<u32, Duration>,
    next_task: u32,
    requests: u64,
    history: Vec<Event>,
    calls: Vec<Call>,
}

/// One Redfish request as the BMC received it: who sent it (its User-Agent) and when, in
/// virtual time. `answered_ms` stays empty for a call the client abandoned before the answer
/// (or that is still running).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Call {
    pub caller: Option<String>,
    pub method: String,
    pub path: String,
    pub received_ms: u64,
    pub answered_ms: Option<u64>,
    pub status: Option<u16>,
}

/// A read-only snapshot of a BMC, as tests and the admin endpoint see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostState {
    pub power_state: PowerState,
    /// BootProgress.LastState.
    pub boot_progress: &'static str,
    pub boot_override: BootOverride,
    pub media: Media,
    pub usb_stick: Media,
    pub current_image: Option<String>,
    /// What cloud-init made of the seed the host last booted with.
    pub playback: Option<Playback>,
    pub open_sessions: usize,
    /// Redfish requests this BMC received (all of them, including refused ones).
    pub requests: u64,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn check(property: &'static str, allowed: &[&str], value: &str) -> Result<(), Refusal> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(Refusal::NotAllowed {
            property,
            value: value.to_owned(),
        })
    }
}

impl Bmc {
    /// A powered-off BMC with empty media and no override.
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            power_on: false,
            settles_at: Duration::ZERO,
            boot: None,
            boot_override: BootOverride::default(),
            generation: 1,
            media: Media {
                write_protected: true,
                ..Media::default()
            },
            usb_stick: Media {
                write_protected: true,
                ..Media::default()
            },
            seed_played_for: None,
            playback: None,
            current_image: None,
            sessions: BTreeMap::new(),
            next_session: 1,
            tasks: BTreeMap::new(),
            next_task: 1,
            requests: 0,
            history: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// Applies what time has made true: an OS installed from Cd becomes the disk's image.
    fn settle(&mut self, now: Duration) {
        if self.boot_progress(now) == "OSRunning"
            && let Some(boot) = &self.boot
            && boot.source == "Cd"
        {
            self.current_image.clone_from(&boot.image);
        }
    }

    pub fn power_state(&self, now: Duration) -> PowerState {
        match (self.power_on, now >= self.settles_at) {
            (true, true) => PowerState::On,
            (false, true) => PowerState::Off,
            (true, false) => PowerState::PoweringOn,
            (false, false) => PowerState::PoweringOff,
        }
    }

    /// BootProgress.LastState: thirds of the boot time, then OSRunning. A boot without a
    /// medium stops after hardware init; a hanging one at OSBootStarted.
    pub fn boot_progress(&self, now: Duration) -> &'static str {
        let Some(boot) = &self.boot else {
            return "None";
        };
        if !self.power_on || now < boot.starts_at {
            return "None";
        }
        let elapsed = now - boot.starts_at;
        let third = self.timing.boot_time / 3;
        let state = if elapsed >= self.timing.boot_time {
            "OSRunning"
        } else if elapsed >= third * 2 {
            "OSBootStarted"
        } else if elapsed >= third {
            "SystemHardwareInitializationComplete"
        } else {
            "PrimaryProcessorInitializationStarted"
        };
        match state {
            "OSBootStarted" | "OSRunning" if !boot.bootable => {
                "SystemHardwareInitializationComplete"
            }
            "OSRunning" if boot.hangs => "OSBootStarted",
            other => other,
        }
    }

    /// ComputerSystem.Reset. `power_stuck` accepts the action without effect.
    pub fn reset(
        &mut self,
        now: Duration,
        reset_type: &str,
        power_stuck: bool,
        boot_hangs: bool,
    ) -> Result<(), Refusal> {
        check("ResetType", &RESET_TYPES, reset_type)?;
        self.settle(now);
        self.history.push(Event::PowerAction {
            at_ms: millis(now),
            reset_type: reset_type.to_owned(),
            applied: !power_stuck,
        });
        if power_stuck {
            return Ok(());
        }
        let delay = self.timing.power_delay;
        match reset_type {
            "On" if self.power_on => {}
            "On" | "GracefulRestart" | "ForceRestart" | "PowerCycle" => {
                self.power_on = true;
                self.settles_at = now + delay;
                self.start_boot(now + delay, now, boot_hangs);
            }
            "ForceOff" => self.power_off(now),
            _ /* GracefulShutdown */ if self.power_on => self.power_off(now + delay),
            _ => {}
        }
        Ok(())
    }

    fn power_off(&mut self, at: Duration) {
        self.power_on = false;
        self.settles_at = at;
        self.boot = None;
    }

    /// Decides what the next boot runs, consuming a Once override (Enabled -> Disabled).
    fn start_boot(&mut self, starts_at: Duration, now: Duration, hangs: bool) {
        let o = &mut self.boot_override;
        let source = if o.boot_source_override_enabled != "Disabled"
            && o.boot_source_override_target != "None"
        {
            let target = o.boot_source_override_target.clone();
            if o.boot_source_override_enabled == "Once" {
                o.boot_source_override_enabled = "Disabled".to_owned();
                self.generation += 1;
            }
            target
        } else {
            "Hdd".to_owned()
        };
        let (image, bootable) = match source.as_str() {
            "Cd" => (
                self.media
                    .inserted
                    .then(|| self.media.image.clone())
                    .flatten(),
                self.media.inserted,
            ),
            "Hdd" => (self.current_image.clone(), true),
            _ => (None, true),
        };
        self.history.push(Event::Boot {
            at_ms: millis(now),
            source: source.clone(),
            image: image.clone(),
        });
        self.boot = Some(Boot {
            starts_at,
            source,
            image,
            bootable,
            hangs,
        });
    }

    pub fn boot_override(&self) -> &BootOverride {
        &self.boot_override
    }

    /// The ETag of the ComputerSystem (it changes when the boot override does).
    pub fn etag(&self) -> String {
        format!("W/\"{}\"", self.generation)
    }

    pub fn patch_boot(&mut self, now: Duration, patch: BootPatch) -> Result<(), Refusal> {
        let mut next = self.boot_override.clone();
        if let Some(t) = patch.target {
            check("BootSourceOverrideTarget", &BOOT_TARGETS, &t)?;
            next.boot_source_override_target = t;
        }
        if let Some(e) = patch.enabled {
            check("BootSourceOverrideEnabled", &BOOT_ENABLED, &e)?;
            next.boot_source_override_enabled = e;
        }
        if let Some(m) = patch.mode {
            check("BootSourceOverrideMode", &BOOT_MODES, &m)?;
            next.boot_source_override_mode = m;
        }
        self.history.push(Event::BootOverrideSet {
            at_ms: millis(now),
            target: next.boot_source_override_target.clone(),
            enabled: next.boot_source_override_enabled.clone(),
            mode: next.boot_source_override_mode.clone(),
        });
        if next != self.boot_override {
            self.boot_override = next;
            self.generation += 1;
        }
        Ok(())
    }

    fn device_mut(&mut self, device: Device) -> &mut Media {
        match device {
            Device::Cd => &mut self.media,
            Device::UsbStick => &mut self.usb_stick,
        }
    }

    pub fn insert_media(
        &mut self,
        now: Duration,
        device: Device,
        image: String,
        write_protected: bool,
    ) -> Result<(), Refusal> {
        if self.device_mut(device).inserted {
            return Err(Refusal::MediaInserted);
        }
        let at_ms = millis(now);
        if unreachable(&image) {
            self.history.push(Event::MediaRefused {
                at_ms,
                device,
                image: image.clone(),
            });
            return Err(Refusal::ImageUnreachable(image));
        }
        self.history.push(Event::MediaInserted {
            at_ms,
            device,
            image: image.clone(),
        });
        *self.device_mut(device) = Media {
            image: Some(image),
            inserted: true,
            write_protected,
        };
        Ok(())
    }

    pub fn eject_media(&mut self, now: Duration, device: Device) {
        let image = self.device_mut(device).image.take();
        self.device_mut(device).inserted = false;
        self.history.push(Event::MediaEjected {
            at_ms: millis(now),
            device,
            image,
        });
    }

    /// The seed URL cloud-init reads now: once per boot, when the OS is running with a seed
    /// on the USB stick. Claims the boot, so the seed is played once.
    pub fn seed_due(&mut self, now: Duration) -> Option<String> {
        let started = self.boot.as_ref()?.starts_at;
        if self.boot_progress(now) != "OSRunning"
            || !self.usb_stick.inserted
            || self.seed_played_for == Some(started)
        {
            return None;
        }
        self.seed_played_for = Some(started);
        self.usb_stick.image.clone()
    }

    /// The OS whose seed was just played powers the machine off (cloud-init's
    /// `power_state: {mode: poweroff}`); nothing when the machine rebooted since.
    pub fn power_off_from_os(&mut self, now: Duration) {
        let played_boot = self.boot.as_ref().map(|b| b.starts_at);
        if !self.power_on || played_boot.is_none() || played_boot != self.seed_played_for {
            return;
        }
        self.settle(now);
        self.history
            .push(Event::OsPoweredOff { at_ms: millis(now) });
        self.power_off(now);
    }

    /// The instance the last played seed was for, as cloud-init caches it on the disk.
    pub fn last_instance(&self) -> Option<&str> {
        self.playback
            .as_ref()?
            .seed
            .as_ref()?
            .instance_id
            .as_deref()
    }

    pub fn record_playback(&mut self, playback: Playback) {
        self.playback = Some(playback);
    }

    /// Drops sessions idle longer than the timeout.
    fn expire_sessions(&mut self, now: Duration) {
        let timeout = self.timing.session_timeout;
        let expired: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(_, s)| now.saturating_sub(s.last_used) > timeout)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            self.sessions.remove(&id);
            self.history.push(Event::SessionClosed {
                at_ms: millis(now),
                id,
                reason: SessionEnd::Expired,
            });
        }
    }

    /// Opens a session for an already authenticated user.
    pub fn open_session(
        &mut self,
        now: Duration,
        user: &str,
        token: String,
    ) -> Result<u32, Refusal> {
        self.expire_sessions(now);
        if self.sessions.len() >= self.timing.session_limit {
            return Err(Refusal::SessionLimit(self.timing.session_limit));
        }
        let id = self.next_session;
        self.next_session += 1;
        self.sessions.insert(
            id,
            Session {
                token,
                user: user.to_owned(),
                last_used: now,
            },
        );
        self.history.push(Event::SessionOpened {
            at_ms: millis(now),
            id,
            user: user.to_owned(),
        });
        Ok(id)
    }

    /// The session holding `token`, refreshed; `None` if unknown or expired.
    pub fn touch_session(&mut self, now: Duration, token: &str) -> Option<u32> {
        self.expire_sessions(now);
        let (id, session) = self.sessions.iter_mut().find(|(_, s)| s.token == token)?;
        session.last_used = now;
        Some(*id)
    }

    pub fn close_session(&mut self, now: Duration, id: u32) -> bool {
        let closed = self.sessions.remove(&id).is_some();
        if closed {
            self.history.push(Event::SessionClosed {
                at_ms: millis(now),
                id,
                reason: SessionEnd::LoggedOut,
            });
        }
        closed
    }

    pub fn sessions(&mut self, now: Duration) -> &BTreeMap<u32, Session> {
        self.expire_sessions(now);
        &self.sessions
    }

    /// Starts a task that completes after `takes`; returns its id.
    pub fn start_task(&mut self, now: Duration, takes: Duration) -> u32 {
        let id = self.next_task;
        self.next_task += 1;
        self.tasks.insert(id, now + takes);
        id
    }

    /// `Some(true)`: done (and forgotten); `Some(false)`: running; `None`: unknown task.
    pub fn poll_task(&mut self, now: Duration, id: u32) -> Option<bool> {
        let done = now >= *self.tasks.get(&id)?;
        if done {
            self.tasks.remove(&id);
        }
        Some(done)
    }

    pub fn count_request(&mut self) {
        self.requests += 1;
    }

    /// Redfish requests received so far (what [`HostState::requests`] reports), read
    /// without settling anything.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Records a request as received; returns its index for [`Bmc::call_answered`].
    pub fn call_received(
        &mut self,
        now: Duration,
        caller: Option<String>,
        method: String,
        path: String,
    ) -> usize {
        self.calls.push(Call {
            caller,
            method,
            path,
            received_ms: millis(now),
            answered_ms: None,
            status: None,
        });
        self.calls.len() - 1
    }

    pub fn call_answered(&mut self, index: usize, now: Duration, status: u16) {
        if let Some(call) = self.calls.get_mut(index) {
            call.answered_ms = Some(millis(now));
            call.status = Some(status);
        }
    }

    /// Every request received, oldest first.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    pub fn history(&self) -> &[Event] {
        &self.history
    }

    pub fn clear_history(&mut self) {
        self.history.clear();
        self.calls.clear();
    }

    pub fn state(&mut self, now: Duration) -> HostState {
        self.settle(now);
        self.expire_sessions(now);
        HostState {
            power_state: self.power_state(now),
            boot_progress: self.boot_progress(now),
            boot_override: self.boot_override.clone(),
            media: self.media.clone(),
            usb_stick: self.usb_stick.clone(),
            current_image: self.current_image.clone(),
            playback: self.playback.clone(),
            open_sessions: self.sessions.len(),
            requests: self.requests,
        }
    }
}

#[cfg(test)]
mod tests;
