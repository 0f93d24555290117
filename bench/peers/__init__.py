"""Baselines: the same sendSms POST written the way a typical rq or dramatiq user would."""
