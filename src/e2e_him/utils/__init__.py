"""The ground floor, imported by every other package and importing none of them: composing and
instantiating configs, OmegaConf resolvers, checks and warnings logged at start-up."""
