DROP FUNCTION IF EXISTS reckon_wilson_high;
DROP FUNCTION IF EXISTS reckon_wilson_low
