//! placeholder: the scheduler (pure: observed objects + clock -> decisions).
