"""One page per step of the flow: Data, Model, Train, Results, Export, Predict."""
