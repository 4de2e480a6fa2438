"""Thermal physics: raw counts to °C, the blackbody reference, RGB→thermal registration, the canthus measurement and the station calibration."""
