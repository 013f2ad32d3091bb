-- Airflow metadata gets its own database; the Feast SQL registry uses "postgres".
CREATE DATABASE reelrec_airflow;
