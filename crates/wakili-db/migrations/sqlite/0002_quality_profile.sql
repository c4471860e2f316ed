-- The consultation's video quality profile (a name from [media.profiles]); NULL: the default.
ALTER TABLE video_consultations ADD COLUMN quality_profile TEXT;
