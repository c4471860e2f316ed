-- How the consultation's media travels (p2p, sfu or auto), fixed at booking.
ALTER TABLE video_consultations ADD COLUMN media_mode TEXT NOT NULL DEFAULT 'auto';
